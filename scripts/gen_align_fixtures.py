#!/usr/bin/python3
"""Fixtures for the math reward (src/align/rewards.ts parseNumber / mathEqual): exact values of
answer strings computed by Python's fractions.Fraction.

  /usr/bin/python3 scripts/gen_align_fixtures.py   ->  test/fixtures/align/math_values.json

values: [text, num, den] with num/den of Fraction in lowest terms (as strings: they can exceed
        2^53), or num = den = None where Fraction rejects the text (our parser must too).
        Plain texts are in Fraction's own grammar and are parsed by Fraction directly; the
        written forms that Fraction does not read (thousands commas, \\frac, $...$, a trailing
        period) carry the Fraction of the parts they were written from.
pairs:  [a, b, equal] with equal = Fraction(a) == Fraction(b): several spellings of one value
        (3/4, 0.75, 0.750, \\dfrac{6}{8}), near misses (a last digit changed, float repr of 1/3).
"""
import json
import os
import random
from decimal import Decimal, getcontext
from fractions import Fraction

getcontext().prec = 200
rng = random.Random(17)
OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'align', 'math_values.json')


def digits(n):
    return ''.join(rng.choice('0123456789') for _ in range(n))


def sign():
    return rng.choice(['', '', '-', '+'])


def plain():
    """A string in Fraction's grammar."""
    kind = rng.choice(['int', 'bigint', 'dec', 'dec0', 'exp', 'frac', 'lead'])
    if kind == 'int':
        return sign() + str(rng.randint(0, 10**6))
    if kind == 'bigint':
        return sign() + str(rng.randint(1, 10**30))
    if kind == 'dec':
        return sign() + digits(rng.randint(1, 4)) + '.' + digits(rng.randint(1, 18))
    if kind == 'dec0':
        return sign() + rng.choice(['', '0']) + '.' + digits(rng.randint(1, 6)) + '0' * rng.randint(0, 3)
    if kind == 'exp':
        return sign() + digits(rng.randint(1, 3)) + rng.choice(['', '.' + digits(2)]) + rng.choice('eE') + rng.choice(['', '-', '+']) + str(rng.randint(0, 25))
    if kind == 'frac':
        return sign() + str(rng.randint(0, 10**4)) + '/' + str(rng.randint(1, 10**4))
    return sign() + '0' * rng.randint(1, 3) + str(rng.randint(0, 999)) + rng.choice(['', '.', '.5', '.50'])


def written():
    """(text, value): forms Fraction does not read, with the value of their parts."""
    kind = rng.choice(['commas', 'commas_dec', 'frac', 'neg_frac', 'dollars', 'period'])
    if kind == 'commas':
        n = rng.randint(1000, 10**12) * rng.choice([1, -1])
        return f'{n:,}', Fraction(n)
    if kind == 'commas_dec':
        n, d = rng.randint(1000, 10**9), digits(rng.randint(1, 4))
        return f'{n:,}.{d}', Fraction(f'{n}.{d}')
    if kind in ('frac', 'neg_frac'):
        a, b = rng.randint(-99, 999), rng.randint(1, 999)
        cmd = rng.choice(['frac', 'dfrac', 'tfrac'])
        pre = '-' if kind == 'neg_frac' else ''
        return f'{pre}\\{cmd}{{{a}}}{{{b}}}', -Fraction(a, b) if pre else Fraction(a, b)
    if kind == 'dollars':
        s = plain()
        return f'${s}$', Fraction(s)
    s = plain()
    if s.endswith('.'):
        s += '0'
    return s + '.', Fraction(s)


def spellings(v):
    """Several texts of the exact value v (a terminating decimal when the denominator allows)."""
    k = rng.randint(2, 9)
    out = [f'{v.numerator}/{v.denominator}', f'{v.numerator * k}/{v.denominator * k}',
           f'\\dfrac{{{v.numerator * k}}}{{{v.denominator * k}}}']
    dec = Decimal(v.numerator) / Decimal(v.denominator)
    if Fraction(str(dec)) == v and 'E' not in str(dec):
        out += [str(dec), str(dec) + '0' * rng.randint(1, 3)] if '.' in str(dec) else [str(dec), str(dec) + '.0']
    return out


def value(text):
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None


values = []
for _ in range(140):
    s = plain()
    v = value(s)
    values.append([s, str(v.numerator), str(v.denominator)] if v is not None else [s, None, None])
for _ in range(60):
    s, v = written()
    values.append([s, str(v.numerator), str(v.denominator)])
for s in ['', '.', 'abc', '--1', '1e', 'e5', '1.2.3', '0x10', '1/0', '1/2/3', '1,00', '12,3456', '3/-4', '+-2', 'Infinity', 'nan']:
    v = value(s)
    values.append([s, str(v.numerator), str(v.denominator)] if v is not None else [s, None, None])

pairs = []
for _ in range(40):
    v = Fraction(rng.randint(-999, 999), rng.choice([1, 2, 4, 5, 8, 10, 16, 20, 25, 40, 3, 6, 7, 12]))
    sp = spellings(v)
    a, b = rng.sample(sp, 2)
    pairs.append([a, b])
    pairs.append([a, rng.choice(spellings(v + Fraction(1, 10**rng.randint(1, 12))))])
for _ in range(20):
    # Near misses: a decimal with its last digit changed; a float's repr of a fraction that is not one.
    d = digits(1) + '.' + digits(rng.randint(8, 17)) + rng.choice('123456789')
    e = d[:-1] + str((int(d[-1]) + rng.choice([1, 8])) % 10)
    pairs.append([d, e])
    q = Fraction(rng.randint(1, 99), rng.choice([3, 7, 9, 11, 13]))
    pairs.append([repr(float(q)), f'{q.numerator}/{q.denominator}'])
for _ in range(40):
    a, b = rng.choice(values), rng.choice(values)
    if a[1] is not None and b[1] is not None:
        pairs.append([a[0], b[0]])


def exact(text):
    for s, n, d in values:
        if s == text and n is not None:
            return Fraction(int(n), int(d))
    t = text.replace('\\dfrac{', '').replace('}{', '/').replace('}', '')
    return Fraction(t)


pairs = [[a, b, exact(a) == exact(b)] for a, b in pairs]
os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, 'w') as f:
    rows = lambda xs: ',\n'.join(json.dumps(x) for x in xs)
    f.write(f'{{"generator": "scripts/gen_align_fixtures.py (Python fractions.Fraction)",\n'
            f'"values": [\n{rows(values)}\n],\n"pairs": [\n{rows(pairs)}\n]}}\n')
print(f'{OUT}: {len(values)} values, {len(pairs)} pairs ({sum(p[2] for p in pairs)} equal)')
