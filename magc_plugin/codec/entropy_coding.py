"""Entropy coding of compressai's learned tables with constriction's ANS stack coder.

compressai's entropy models (EntropyBottleneck, GaussianConditional) supply the tables: per table row an
integer CDF of 2**16 (``quantized_cdf``, ``cdf_length``, ``offset``) whose last symbol is reserved for
values outside the row. constriction (Rust, memory-safe) codes them, instead of compressai's C++ rANS
whose decoder reads past its buffer on a short stream and whose escape ("bypass") loop has no bound.

- Models: a row's probabilities are its CDF steps / 2**16 in float64, exact, so every machine builds the same
  constriction model (its quantisation to 24 bits uses IEEE arithmetic only).
- Order: the symbols coded with one table go in one batch, tables in increasing order; the grouping is a
  function of the table indexes, which the decoder knows before it decodes them.
- Escape: a value outside its row is coded as the row's last symbol, then as one symbol of a uniform model
  over ``2 * ESCAPE_SPAN`` values (compressai's zigzag map, from the row's edge); values farther out are
  clamped, so the encoder returns what the decoder will see. Every symbol is bounded work.
- Length: the stream is whole 32-bit words, little-endian. The coder starts from a known state (SEAL, no
  words), and the decoder requires exactly that state, with every word read, once the last symbol is decoded:
  a stream cut short, with bytes after its end, or garbage, fails this check (or constriction's own).

ANS is a stack: the decoder pops what the encoder pushed last, so the encoder collects its batches in the
decoder's order and pushes them in reverse (``encode_reverse`` keeps each batch's own order).
"""
import numpy as np
from constriction import stream  # a submodule of the compiled extension, not an importable package

from .errors import MAGCError

CDF_PRECISION = 16  # compressai's quantized CDFs sum to 2**16
ESCAPE_SPAN = 1 << 15  # values up to this far outside a table row are coded exactly, 16 bits after the escape
# The coder's state before the first symbol, and the decoder's after the last. Below the 24-bit precision it
# costs next to no bits; far above the few values a stream cut short decays to, so those fail the end check.
SEAL = 0xB7E15
WORD = np.dtype("<u4")  # the stream's byte order, fixed
ESCAPED = stream.model.Uniform(2 * ESCAPE_SPAN)  # what follows an escape symbol


class Tables:
    """One compressai entropy model's CDF table rows, as constriction categorical models built on demand."""

    def __init__(self, entropy_model):
        if entropy_model.quantized_cdf.numel() == 0:
            raise MAGCError("The entropy model has no CDF tables: call update() after training before compressing.")
        self.cdf = entropy_model.quantized_cdf.cpu().numpy().astype(np.int64)
        self.escape = entropy_model.cdf_length.cpu().numpy().reshape(-1).astype(np.int64) - 2  # a row's last symbol
        self.offset = entropy_model.offset.cpu().numpy().reshape(-1).astype(np.int64)
        self._models = {}

    def model(self, row):
        if row not in self._models:
            probabilities = np.diff(self.cdf[row, :self.escape[row] + 2]).astype(np.float64) / (1 << CDF_PRECISION)
            self._models[row] = stream.model.Categorical(probabilities, perfect=False)
        return self._models[row]


def batches(indexes):
    """(table row, positions) of each row used, rows ascending, positions ascending within a row."""
    order = np.argsort(indexes, kind="stable")
    rows, starts = np.unique(indexes[order], return_index=True)
    return zip(rows.tolist(), np.split(order, starts[1:]))


class Encoder:
    """Collects batches in the decoder's order; ``payload()`` pushes them last-first."""

    def __init__(self):
        self.steps = []

    def add(self, tables, symbols, indexes):
        """Queue integer symbols (any shape) coded with table rows ``indexes``; returns them as the decoder will
        read them (those beyond ESCAPE_SPAN clamped)."""
        shape, indexes = symbols.shape, indexes.reshape(-1).astype(np.int64)
        escape = tables.escape[indexes]
        value = symbols.reshape(-1).astype(np.int64) - tables.offset[indexes]
        value = np.clip(value, -ESCAPE_SPAN, escape + ESCAPE_SPAN - 1)
        outside = (value < 0) | (value >= escape)
        row_symbol = np.where(outside, escape, value).astype(np.int32)
        self.steps += [(row_symbol[positions], tables.model(row)) for row, positions in batches(indexes)]
        if outside.any():
            v, e = value[outside], escape[outside]
            self.steps.append((np.where(v < 0, -2 * v - 1, 2 * (v - e)).astype(np.int32), ESCAPED))
        return (value + tables.offset[indexes]).reshape(shape)

    def payload(self):
        coder = stream.stack.AnsCoder(np.array([SEAL], np.uint32))
        for symbols, model in reversed(self.steps):
            coder.encode_reverse(symbols, model)
        return coder.get_compressed().astype(WORD).tobytes()


class Decoder:
    """Pops batches in the order Encoder.add queued them; ``finish()`` checks the stream ended exactly."""

    def __init__(self, payload):
        if len(payload) % WORD.itemsize:
            raise MAGCError(f"The tile's entropy-coded stream is {len(payload)} bytes, not whole 32-bit words: "
                            "the file is damaged.")
        self.coder = self._checked(stream.stack.AnsCoder, np.frombuffer(payload, WORD).astype(np.uint32))

    @staticmethod
    def _checked(call, *args):
        try:
            return call(*args)
        except Exception as exc:  # constriction refuses some malformed streams itself (ValueError)
            raise MAGCError(f"The tile's entropy-coded stream is damaged ({exc}).") from exc

    def read(self, tables, indexes):
        """Integer symbols of the shape of ``indexes``, coded with those table rows."""
        shape, indexes = indexes.shape, indexes.reshape(-1).astype(np.int64)
        value = np.empty(indexes.size, np.int64)
        for row, positions in batches(indexes):
            value[positions] = self._checked(self.coder.decode, tables.model(row), positions.size)
        escape = tables.escape[indexes]
        outside = value == escape
        if outside.any():
            raw = self._checked(self.coder.decode, ESCAPED, int(outside.sum())).astype(np.int64)
            value[outside] = np.where(raw % 2 == 1, -(raw + 1) // 2, escape[outside] + raw // 2)
        return (value + tables.offset[indexes]).reshape(shape)

    def finish(self):
        if self.coder.pos() != (0, SEAL):  # (words left, state)
            raise MAGCError("The tile's entropy-coded stream is cut short or has bytes after its end: "
                            "the file is damaged.")
