/**
 * Reads parts of a file at given offsets, so a checkpoint of hundreds of megabytes is never held
 * whole in memory: only the tensors an import uses are read.
 */
import fs from 'node:fs';
import { UserError } from '../../contract/errors.ts';

export class ByteReader {
  private constructor(
    private readonly fd: number,
    readonly size: number,
    readonly file: string,
  ) {}

  static open(file: string): ByteReader {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (error) {
      throw new UserError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, 'weights_unreadable', { file });
    }
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) {
      fs.closeSync(fd);
      throw new UserError(`${file} is not a regular file`, 'weights_unreadable', { file });
    }
    return new ByteReader(fd, stat.size, file);
  }

  read(offset: number, length: number): Buffer {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new UserError(`${this.file} is truncated or damaged: it points at bytes ${offset}–${offset + length} of ${this.size}`, 'weights_damaged', { file: this.file });
    }
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const n = fs.readSync(this.fd, out, done, length - done, offset + done);
      if (n === 0) throw new UserError(`${this.file} ended early`, 'weights_damaged', { file: this.file });
      done += n;
    }
    return out;
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}
