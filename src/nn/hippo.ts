// HiPPO (Gu et al. 2020, "Recurrent Memory with Optimal Polynomial Projections") and the S4D
// initialisations (Gu et al. 2022, "On the Parameterization and Initialization of Diagonal State
// Space Models"): the matrices state-space layers start from. Plain Float64Array math, run once
// at initialisation (not hot); matrices are N×N row-major.
//
// HiPPO keeps an online summary of a signal f: coefficients c(t) of f's projection on Legendre
// polynomials under a measure, updated by the linear ODE dc/dt = A c + B f. Two measures (the
// S4 repository's sign convention: A is stable):
//   LegS  A[n,k] = −√((2n+1)(2k+1)) (n > k), −(n+1) (n = k), 0 (n < k);  B[n] = √(2n+1)
//         dc/dt = (1/t)(A c + B f): f on [0, t], basis √(2n+1)·P_n(2x/t − 1)
//   LegT  A[n,k] = −√((2n+1)(2k+1))·(1 if n ≥ k else (−1)^(n−k));  B[n] = √(2n+1)
//         dc/dt = (1/θ)(A c + B f): f on the window [t − θ, t], basis √(2n+1)·P_n(2(x − t)/θ + 1)
// LegS is "normal plus low rank" (S4's NPLR): with P[n] = √(n + ½), A + P·Pᵀ = −½·I + S, S
// skew-symmetric. S4D keeps only a diagonal A of N/2 complex modes (conjugates implicit):
//   lin   A_n = −½ + iπn                      inv   A_n = −½ + i(N/π)(N/(2n+1) − 1)
//   real  A_n = −(n+1)                         legs  A_n = −½ + iλ_n, iλ_n the eigenvalues of S
// (legs: one λ_n > 0 per conjugate pair, ascending; inv is their asymptotic form).

export type Measure = 'legs' | 'legt';
export type Discretization = 'bilinear' | 'zoh';
export type S4DInit = 'lin' | 'inv' | 'real' | 'legs';
export const S4D_INITS: readonly S4DInit[] = ['lin', 'inv', 'real', 'legs'];

export class HippoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HippoError';
  }
}

function checkN(what: string, N: number, even = false): void {
  if (!Number.isInteger(N) || N < 1) throw new HippoError(`${what}: state size N must be a positive integer, got ${N}`);
  if (even && N % 2) throw new HippoError(`${what}: state size N must be even (N/2 complex modes), got ${N}`);
}

/** HiPPO's (A (N×N), B (N)) for a measure. */
export function hippoTransition(measure: Measure, N: number): { A: Float64Array; B: Float64Array } {
  checkN('hippoTransition', N);
  const A = new Float64Array(N * N), B = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    B[n] = Math.sqrt(2 * n + 1);
    for (let k = 0; k < N; k++) {
      const rr = Math.sqrt((2 * n + 1) * (2 * k + 1));
      if (measure === 'legs') A[n * N + k] = n > k ? -rr : n === k ? -(n + 1) : 0;
      else if (measure === 'legt') A[n * N + k] = n >= k ? -rr : (n - k) % 2 === 0 ? -rr : rr;
      else throw new HippoError(`hippoTransition: unknown measure "${String(measure)}" (legs, legt)`);
    }
  }
  return { A, B };
}

/** LegS's normal part S = A + P·Pᵀ (= −½·I + skew-symmetric) and its rank-1 correction P[n] = √(n + ½). */
export function legsNormal(N: number): { S: Float64Array; P: Float64Array } {
  const { A } = hippoTransition('legs', N);
  const P = Float64Array.from({ length: N }, (_, n) => Math.sqrt(n + 0.5));
  const S = A.map((a, i) => a + P[Math.floor(i / N)] * P[i % N]);
  return { S, P };
}

/** The N/2 complex modes A_n = real[n] + i·imag[n] of an S4D initialisation (N even). */
export function s4dInit(kind: S4DInit, N: number): { real: Float64Array; imag: Float64Array } {
  checkN('s4dInit', N, true);
  const M = N / 2;
  const real = new Float64Array(M).fill(-0.5), imag = new Float64Array(M);
  switch (kind) {
    case 'lin': for (let n = 0; n < M; n++) imag[n] = Math.PI * n; break;
    case 'inv': for (let n = 0; n < M; n++) imag[n] = (N / Math.PI) * (N / (2 * n + 1) - 1); break;
    case 'real': for (let n = 0; n < M; n++) real[n] = -(n + 1); break;
    case 'legs': imag.set(legsFrequencies(N)); break;
    default: throw new HippoError(`s4dInit: unknown initialisation "${String(kind)}" (${S4D_INITS.join(', ')})`);
  }
  return { real, imag };
}

/**
 * The λ_n > 0 (ascending, N/2 of them) with ±iλ_n the eigenvalues of LegS's skew part K = S + ½·I:
 * the eigenvalues of the symmetric −K² = KᵀK are the λ_n², each twice (N even: no zero).
 */
function legsFrequencies(N: number): Float64Array {
  const { S } = legsNormal(N);
  const K = S.map((v, i) => (Math.floor(i / N) === i % N ? v + 0.5 : v));
  const mu = symmetricEigenvalues(matmul(transposed(K, N), K, N), N).sort((a, b) => a - b);
  return Float64Array.from({ length: N / 2 }, (_, n) => Math.sqrt(Math.max(0, 0.5 * (mu[2 * n] + mu[2 * n + 1]))));
}

/**
 * (dA, dB) of the ODE dc/dt = A c + B f for a step dt: bilinear (Tustin),
 * dA = (I − dt/2·A)⁻¹(I + dt/2·A), dB = (I − dt/2·A)⁻¹·dt·B; or zero-order hold, dA = exp(dt·A),
 * dB = A⁻¹(exp(dt·A) − I)·B (both from the exponential of [[A, B], [0, 0]]·dt).
 */
export function discretize(A: Float64Array, B: Float64Array, N: number, dt: number, method: Discretization): { dA: Float64Array; dB: Float64Array } {
  if (A.length !== N * N || B.length !== N) throw new HippoError(`discretize: A must be ${N}×${N} and B ${N} long, got ${A.length} and ${B.length} values`);
  if (method === 'bilinear') {
    const left = new Float64Array(N * N), right = new Float64Array(N * N);
    for (let i = 0; i < N * N; i++) {
      const eye = Math.floor(i / N) === i % N ? 1 : 0;
      left[i] = eye - (dt / 2) * A[i];
      right[i] = eye + (dt / 2) * A[i];
    }
    return { dA: solve(left, right, N, N), dB: solve(left, B.map((b) => dt * b), N, 1) };
  }
  if (method === 'zoh') {
    const M = N + 1, aug = new Float64Array(M * M);
    for (let i = 0; i < N; i++) {
      for (let k = 0; k < N; k++) aug[i * M + k] = dt * A[i * N + k];
      aug[i * M + N] = dt * B[i];
    }
    const E = expm(aug, M);
    const dA = new Float64Array(N * N), dB = new Float64Array(N);
    for (let i = 0; i < N; i++) {
      for (let k = 0; k < N; k++) dA[i * N + k] = E[i * M + k];
      dB[i] = E[i * M + N];
    }
    return { dA, dB };
  }
  throw new HippoError(`discretize: unknown method "${String(method)}" (bilinear, zoh)`);
}

/** Legendre polynomials P_0 … P_{N−1} at s (Bonnet: (n+1)P_{n+1} = (2n+1)s·P_n − n·P_{n−1}). */
export function legendre(N: number, s: number): Float64Array {
  const out = new Float64Array(N);
  if (N > 0) out[0] = 1;
  if (N > 1) out[1] = s;
  for (let n = 1; n + 1 < N; n++) out[n + 1] = ((2 * n + 1) * s * out[n] - n * out[n - 1]) / (n + 1);
  return out;
}

/**
 * The HiPPO memory run online over samples f[k−1] = f(k·dt), k = 1 … L; returns the N coefficients
 * after the last sample. LegT (window θ) uses A/θ, B/θ and the step dt, discretised once. LegS is
 * time-varying: step k uses A/k, B/k with a unit step (dt cancels in dt/t), discretised per step.
 */
export function hippoRun(measure: Measure, N: number, f: ArrayLike<number>, opts: { dt: number; method: Discretization; theta?: number }): Float64Array {
  const { A, B } = hippoTransition(measure, N);
  let c = new Float64Array(N);
  const step = (dA: Float64Array, dB: Float64Array, fk: number): void => {
    const next = new Float64Array(N);
    for (let i = 0; i < N; i++) {
      let s = dB[i] * fk;
      for (let j = 0; j < N; j++) s += dA[i * N + j] * c[j];
      next[i] = s;
    }
    c = next;
  };
  if (measure === 'legt') {
    const theta = opts.theta;
    if (!(theta !== undefined && theta > 0)) throw new HippoError('hippoRun: LegT needs a window length theta > 0');
    const { dA, dB } = discretize(A.map((a) => a / theta), B.map((b) => b / theta), N, opts.dt, opts.method);
    for (let k = 0; k < f.length; k++) step(dA, dB, f[k]);
  } else {
    for (let k = 1; k <= f.length; k++) {
      const { dA, dB } = discretize(A.map((a) => a / k), B.map((b) => b / k), N, 1, opts.method);
      step(dA, dB, f[k - 1]);
    }
  }
  return c;
}

/** The memory's approximation Σ_n c_n·√(2n+1)·P_n(s(x)) of f at a point x, at time t. */
export function hippoReconstruct(measure: Measure, c: Float64Array, x: number, t: number, theta?: number): number {
  const s = measure === 'legs' ? (2 * x) / t - 1 : (2 * (x - t)) / theta! + 1;
  const P = legendre(c.length, s);
  let v = 0;
  for (let n = 0; n < c.length; n++) v += c[n] * Math.sqrt(2 * n + 1) * P[n];
  return v;
}

// ---------------------------------------------------------------- small dense linear algebra

function matmul(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) {
    const aik = a[i * n + k];
    if (aik !== 0) for (let j = 0; j < n; j++) out[i * n + j] += aik * b[k * n + j];
  }
  return out;
}

function transposed(a: Float64Array, n: number): Float64Array {
  return a.map((_, i) => a[(i % n) * n + Math.floor(i / n)]);
}

/** X with M·X = R for M (n×n) and R (n×m), by LU with partial pivoting. */
function solve(M: Float64Array, R: Float64Array, n: number, m: number): Float64Array {
  const a = Float64Array.from(M), x = Float64Array.from(R);
  for (let col = 0; col < n; col++) {
    let p = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(a[r * n + col]) > Math.abs(a[p * n + col])) p = r;
    if (a[p * n + col] === 0) throw new HippoError('solve: singular matrix');
    if (p !== col) {
      for (let j = 0; j < n; j++) [a[p * n + j], a[col * n + j]] = [a[col * n + j], a[p * n + j]];
      for (let j = 0; j < m; j++) [x[p * m + j], x[col * m + j]] = [x[col * m + j], x[p * m + j]];
    }
    for (let r = col + 1; r < n; r++) {
      const f = a[r * n + col] / a[col * n + col];
      if (f === 0) continue;
      for (let j = col; j < n; j++) a[r * n + j] -= f * a[col * n + j];
      for (let j = 0; j < m; j++) x[r * m + j] -= f * x[col * m + j];
    }
  }
  for (let col = n - 1; col >= 0; col--) {
    for (let j = 0; j < m; j++) {
      let s = x[col * m + j];
      for (let k = col + 1; k < n; k++) s -= a[col * n + k] * x[k * m + j];
      x[col * m + j] = s / a[col * n + col];
    }
  }
  return x;
}

/** exp(M) by scaling and squaring: Taylor series of M/2^s (‖M/2^s‖₁ ≤ ½, 20 terms), squared s times. */
function expm(M: Float64Array, n: number): Float64Array {
  let norm = 0;
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += Math.abs(M[i * n + j]);
    norm = Math.max(norm, s);
  }
  const sq = Math.max(0, Math.ceil(Math.log2(norm / 0.5)));
  const X = M.map((v) => v / 2 ** sq);
  let E: Float64Array = new Float64Array(n * n), term: Float64Array = new Float64Array(n * n);
  for (let i = 0; i < n; i++) E[i * n + i] = term[i * n + i] = 1;
  for (let k = 1; k <= 20; k++) {
    term = matmul(term, X, n).map((v) => v / k);
    for (let i = 0; i < n * n; i++) E[i] += term[i];
  }
  for (let k = 0; k < sq; k++) E = matmul(E, E, n);
  return E;
}

/** Eigenvalues of a symmetric matrix by cyclic Jacobi rotations (unsorted). */
function symmetricEigenvalues(M: Float64Array, n: number): Float64Array {
  const a = Float64Array.from(M);
  let total = 0;
  for (const v of a) total += v * v;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q] ** 2;
    if (off <= 1e-30 * total) break;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) {
      const apq = a[p * n + q];
      if (apq === 0) continue;
      // The rotation that zeroes a[p][q]: t = tan φ, the smaller root of t² + 2θt − 1 = 0.
      const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
      const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
      const c = 1 / Math.sqrt(t * t + 1), s = t * c;
      for (let k = 0; k < n; k++) { // columns p, q
        const akp = a[k * n + p], akq = a[k * n + q];
        a[k * n + p] = c * akp - s * akq;
        a[k * n + q] = s * akp + c * akq;
      }
      for (let k = 0; k < n; k++) { // rows p, q
        const apk = a[p * n + k], aqk = a[q * n + k];
        a[p * n + k] = c * apk - s * aqk;
        a[q * n + k] = s * apk + c * aqk;
      }
    }
  }
  return Float64Array.from({ length: n }, (_, i) => a[i * n + i]);
}
