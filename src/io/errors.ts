// Errors of the io layer. Every message starts with the file (or the label given for a buffer)
// and names the field or tensor at fault, with expected vs got where there is one.

export class IoError extends Error {
  constructor(readonly file: string, detail: string) {
    super(`${file}: ${detail}`);
    this.name = 'IoError';
  }
}

/** Wrong magic or version, malformed header, JSON that is not what the format says. */
export class FormatError extends IoError {
  constructor(file: string, readonly field: string, detail: string) {
    super(file, `${field}: ${detail}`);
    this.name = 'FormatError';
  }
}

/** The file ends before something it declares. */
export class TruncatedError extends IoError {
  constructor(file: string, readonly field: string, readonly offset: number, readonly needed: number, readonly size: number) {
    super(file, `truncated: ${field} needs ${needed} byte(s) at offset ${offset}, but the file has ${size} bytes`);
    this.name = 'TruncatedError';
  }
}

/** A tensor's entry is inconsistent: offsets out of range or overlapping, size vs dtype×shape, bad shape. */
export class TensorError extends IoError {
  constructor(file: string, readonly tensor: string, detail: string) {
    super(file, `tensor '${tensor}': ${detail}`);
    this.name = 'TensorError';
  }
}

/** A dtype (or ggml type) that the format or this library does not know. */
export class UnsupportedDTypeError extends TensorError {
  constructor(file: string, tensor: string, readonly dtype: string, detail = '') {
    super(file, tensor, `unsupported dtype ${dtype}${detail ? `: ${detail}` : ''}`);
    this.name = 'UnsupportedDTypeError';
  }
}

export class MissingTensorError extends TensorError {
  constructor(file: string, tensor: string, detail = 'missing') {
    super(file, tensor, detail);
    this.name = 'MissingTensorError';
  }
}

export class UnexpectedTensorError extends TensorError {
  constructor(file: string, tensor: string, detail = 'unexpected tensor (not part of the model)') {
    super(file, tensor, detail);
    this.name = 'UnexpectedTensorError';
  }
}

/** A config or metadata field that is missing, of the wrong type, or inconsistent with another. */
export class ConfigFieldError extends IoError {
  constructor(file: string, readonly field: string, detail: string) {
    super(file, `${field}: ${detail}`);
    this.name = 'ConfigFieldError';
  }
}
