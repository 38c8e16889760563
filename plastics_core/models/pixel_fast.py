"""Numpy float32 forward pass of the GPW pixel spectrogram models (no TensorFlow here).

Architecture (checked on all 7 pixel models): input (12 bands, 2 dates, 1) ->
Conv2D(F1, (k1, 2), relu, valid) -> Conv2D(F2, (k2, 1), relu, valid) -> Flatten ->
Dense relu ... -> Dense(2, softmax). Evaluated in a transposed (features, pixels) layout:

- the input is normalized with the same float32 ops as :func:`plastics_core.geo.bands.normalize`
  (folding it into conv1 loses the 1e-5 agreement for unit-norm models), then conv1 is one
  (P1*F1, 24) matrix, rows (position, filter);
- conv2: for each output position h one (F2, k2*F1) matrix times the contiguous row slice
  ``[F1*h, F1*(h+k2))`` of the conv1 output (the real conv structure, no block matrix);
- conv1's ``relu(z + b)`` is computed as ``max(z, -b)`` and ``b`` is carried into conv2's bias
  (``W @ (g + b) = W @ g + W @ b``; only there: carried biases grow to ~1e4 through the dense
  layers and cancel in float32), other layers add the bias then max against a zero column;
- softmax column 1 = ``sigmoid(z1 - z0)`` with a single (1, in) row for the last layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from plastics_core.errors import ModelError
from plastics_core.geo.bands import BAND_NAMES
from plastics_core.threads import map_threads

F32 = np.float32


@dataclass(frozen=True)
class PixelNet:
    """Folded float32 weights of one pixel model (see module docstring)."""

    sub: np.ndarray  # (24, 1) normalization: xn = (x - sub) / div, exactly as bands.normalize
    div: np.ndarray  # (24, 1)
    w1: np.ndarray  # (P1*F1, 24)
    t1: np.ndarray  # (P1*F1, 1) = -bias1
    k2: np.ndarray  # (F2, k2*F1)
    b2: np.ndarray  # (P2*F2, 1) conv2 bias incl. the carried conv1 bias
    f1: int
    kh2: int
    dense: tuple[tuple[np.ndarray, np.ndarray], ...]  # (W (out, in), b (out, 1))
    wd: np.ndarray  # (1, in)
    cd: float

    @property
    def flops_per_pixel(self) -> int:
        p2 = self.b2.shape[0] // self.k2.shape[0]
        n = 2 * (self.w1.size + p2 * self.k2.size + sum(w.size for w, _ in self.dense) + self.wd.size)
        return int(n)

    @classmethod
    def from_keras(
        cls, weights: Sequence[Sequence[np.ndarray]], sub: np.ndarray, div: np.ndarray
    ) -> PixelNet:
        """From ``[layer.get_weights() ...]`` (conv1, conv2, dense..., dense2) and the per-input
        (band-major, date-minor: index ``band*2 + date``) normalization ``(x - sub) / div``."""
        try:
            (k1, b1), (k2, b2), *dense = [[np.asarray(a, np.float64) for a in w] for w in weights]
            kh1, nt, _, f1 = k1.shape
            kh2, _, f1b, f2 = k2.shape
        except ValueError as exc:
            raise ModelError(f"unexpected pixel model layout ({exc}): not a GPW spectrogram model") from exc
        nb = sub.size // nt
        if f1b != f1 or nt != 2 or not dense or dense[-1][0].shape[1] != 2:
            raise ModelError("unexpected pixel model layout: not a GPW spectrogram model")
        p1 = nb - kh1 + 1
        p2 = p1 - kh2 + 1
        w1 = np.zeros((p1, f1, nb, nt))
        bias1 = np.tile(b1, (p1, 1))
        for p in range(p1):
            for kh in range(kh1):
                w1[p, :, p + kh, :] = k1[kh, :, 0, :].T
        k2t = k2[:, 0].reshape(kh2 * f1, f2).T
        bflat = bias1.reshape(-1)
        bias2 = np.stack([b2 + k2t @ bflat[f1 * h : f1 * (h + kh2)] for h in range(p2)]).reshape(-1)
        layers = [(np.ascontiguousarray(w.T, F32), b[:, None].astype(F32)) for w, b in dense[:-1]]
        w, b = dense[-1]
        wd = (w[:, 1] - w[:, 0])[None, :]
        cd = float(b[1] - b[0])
        return cls(
            sub=np.asarray(sub, F32).reshape(-1, 1),
            div=np.asarray(div, F32).reshape(-1, 1),
            w1=w1.reshape(p1 * f1, nb * nt).astype(F32),
            t1=(-bflat)[:, None].astype(F32),
            k2=np.ascontiguousarray(k2t, F32),
            b2=bias2[:, None].astype(F32),
            f1=f1,
            kh2=kh2,
            dense=tuple(layers),
            wd=wd.astype(F32),
            cd=cd,
        )

    def forward(self, xt: np.ndarray) -> np.ndarray:
        """``xt`` (24, n) float32 DN (C-contiguous) -> (n,) float32 waste probability."""
        xn = xt - self.sub
        xn /= self.div
        g = self.w1 @ xn
        np.maximum(g, self.t1, out=g)
        return self.forward_from_conv1(g)

    def forward_from_conv1(self, g: np.ndarray) -> np.ndarray:
        """The rest of :meth:`forward` from the thresholded conv1 output ``g`` (P1*F1, n)."""
        f2 = self.k2.shape[0]
        p2 = self.b2.shape[0] // f2
        g2 = np.empty((p2 * f2, g.shape[1]), F32)
        for h in range(p2):
            np.matmul(self.k2, g[self.f1 * h : self.f1 * (h + self.kh2)], out=g2[f2 * h : f2 * (h + 1)])
        g2 += self.b2
        rows = max([g2.shape[0], *(w.shape[0] for w, _ in self.dense)])
        zero = np.zeros((rows, 1), F32)  # a zero column: ~2x faster than a scalar 0 in np.maximum
        np.maximum(g2, zero, out=g2)
        g = g2
        for w, b in self.dense:
            g = w @ g
            g += b
            np.maximum(g, zero[: len(g)], out=g)
        d = self.wd @ g
        d += F32(self.cd)
        probs: np.ndarray = expit(d[0]).astype(F32, copy=False)
        return probs


def run_chunked(nets: Sequence[PixelNet], x: np.ndarray, chunk: int, threads: int) -> list[np.ndarray]:
    """Run every net on ``x`` (n, 24) float32 in chunks of ``chunk`` pixels over ``threads`` threads.

    Returns one (n,) float32 array per net. Nets sharing one normalization (an ensemble) are
    fused for conv1: one normalization and one stacked (n_nets*P1*F1, 24) product per chunk.
    Memory per thread is O(chunk * n_nets * 160 * 4 bytes).
    """
    n = len(x)
    out = np.empty((len(nets), n), F32)
    fused = len(nets) > 1 and all(
        np.array_equal(m.sub, nets[0].sub)
        and np.array_equal(m.div, nets[0].div)
        and m.w1.shape == nets[0].w1.shape
        for m in nets
    )
    if fused:
        w1 = np.concatenate([m.w1 for m in nets])
        t1 = np.concatenate([m.t1 for m in nets])
        rows = nets[0].w1.shape[0]

    def job(start: int) -> None:
        xt = np.ascontiguousarray(x[start : start + chunk].T, dtype=F32)
        if not fused:
            for i, net in enumerate(nets):
                out[i, start : start + chunk] = net.forward(xt)
            return
        xn = xt - nets[0].sub
        xn /= nets[0].div
        g = w1 @ xn
        np.maximum(g, t1, out=g)
        for i, net in enumerate(nets):
            out[i, start : start + chunk] = net.forward_from_conv1(g[i * rows : (i + 1) * rows])

    starts = range(0, n, chunk)
    if threads <= 1 or n <= chunk:
        for s in starts:
            job(s)
    else:
        map_threads(job, starts, threads)  # cancels pending chunks when interrupted
    return list(out)


def check_pixels(x: np.ndarray, what: str) -> np.ndarray:
    """(n, 12, 2) DN float32, or a ModelError naming the expected layout."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3 or x.shape[1:] != (len(BAND_NAMES), 2):
        raise ModelError(
            f"{what} expects pixel input (n, {len(BAND_NAMES)} bands, 2 dates) DN, got shape {x.shape}: "
            f"give the 12 L1C bands {','.join(BAND_NAMES)} for both composites"
        )
    return x


def norm_vectors(normalization: str, channels: int, dates: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(sub, div)`` float32 of ``(x - sub) / div`` (as :func:`plastics_core.geo.bands.normalize`) for
    ``channels`` = k * 12 bands (k composites, band-last), each repeated ``dates`` times
    (pixel models: index ``band * 2 + date``)."""
    from plastics_core.geo.bands import UNIT_NORM_MEAN, UNIT_NORM_STD

    if normalization == "div3000":
        sub, div = np.zeros(len(BAND_NAMES), F32), np.full(len(BAND_NAMES), 3000.0, F32)
    else:
        sub, div = UNIT_NORM_MEAN, UNIT_NORM_STD
    k = channels // len(BAND_NAMES)
    return np.repeat(np.tile(sub, k), dates).astype(F32), np.repeat(np.tile(div, k), dates).astype(F32)
