"""Compiled loop of the encoder's block search (:func:`armcodec.encoder.motion.search`).
Encoder-only: the vectors it picks are side information the decoder reads.

Without numba the same function runs as Python (correct, and slow: a test-sized frame only).
"""
import numpy as np

try:
    import numba

    jit = numba.njit(cache=True, nogil=True)
except ImportError:  # pragma: no cover - numba is a dependency
    def jit(f):
        return f


@jit
def median3(a, b, c):
    return max(min(a, b), min(max(a, b), c))


@jit
def block_search(cur, padded, block, radius, vector_cost, out, pad, centres, local, reach):
    """cur int32 (H, W, C); padded int32 (H + 2 pad, W + 2 pad, C): the previous frame, its edge
    samples repeated; out int64 (by, bx, 2) <- each block's (dy, dx) of least

        sum over the block and channels of |cur - moved| + vector_cost * block**2 * |v - p|_1

    where ``p`` is the median of the vectors already chosen left, above and above right (zero
    outside the frame), visiting blocks row by row: a field that moves together costs little
    whatever its length (the motion field is coded as each vector's difference from that median).
    The vectors tried: every one within ``radius`` of zero, then (``local`` > 0) every one within
    ``local`` of the block's ``centres`` (int64 (by, bx, 2), e.g. a search on smaller frames) and
    within ``reach`` of zero (``pad`` >= ``reach`` >= ``radius``).  Vectors are visited dy, then
    dx, each from the lowest up, and a vector is kept only when its cost is strictly below the
    best so far (one tried twice changes nothing); a block's sum stops once it reaches that best."""
    h, w, nc = cur.shape
    nby, nbx = out.shape[0], out.shape[1]
    area = block * block
    for by in range(nby):
        y0 = by * block
        y1 = min(y0 + block, h)
        for bx in range(nbx):
            x0 = bx * block
            x1 = min(x0 + block, w)
            ly = out[by, bx - 1, 0] if bx > 0 else 0
            lx = out[by, bx - 1, 1] if bx > 0 else 0
            uy = out[by - 1, bx, 0] if by > 0 else 0
            ux = out[by - 1, bx, 1] if by > 0 else 0
            ry = out[by - 1, bx + 1, 0] if by > 0 and bx + 1 < nbx else 0
            rx = out[by - 1, bx + 1, 1] if by > 0 and bx + 1 < nbx else 0
            py = median3(ly, uy, ry)
            px = median3(lx, ux, rx)
            best = np.inf
            vy = 0
            vx = 0
            for window in range(2 if local > 0 else 1):
                cy = 0 if window == 0 else centres[by, bx, 0]
                cx = 0 if window == 0 else centres[by, bx, 1]
                r = radius if window == 0 else local
                for dy in range(max(cy - r, -reach), min(cy + r, reach) + 1):
                    for dx in range(max(cx - r, -reach), min(cx + r, reach) + 1):
                        cost = vector_cost * area * (abs(dy - py) + abs(dx - px))
                        if cost >= best:
                            continue
                        sad = 0
                        for y in range(y0, y1):
                            row = y + pad + dy
                            for x in range(x0, x1):
                                for c in range(nc):
                                    sad += abs(cur[y, x, c] - padded[row, x + pad + dx, c])
                            if cost + sad >= best:
                                break
                        cost += sad
                        if cost < best:
                            best = cost
                            vy = dy
                            vx = dx
            out[by, bx, 0] = vy
            out[by, bx, 1] = vx


@jit
def moved_sample(prev, phases, sharp, unit, c, y, x, vy, vx):
    """The previous frame's channel ``c`` at (y + vy / unit, x + vx / unit) as
    :func:`armcodec.coding.motion.compensate` moves it (H.264's samples from ``phases`` when
    ``sharp``, quarter pixels; else the bilinear blend)."""
    h, w = prev.shape[0], prev.shape[1]
    iy, fy = y + vy // unit, vy % unit
    ix, fx = x + vx // unit, vx % unit
    if sharp:
        e = (phases.shape[3] - h) // 2
        return phases[c, fy, fx, min(max(iy, -e), h - 1 + e) + e, min(max(ix, -e), w - 1 + e) + e]
    y0, y1 = min(max(iy, 0), h - 1), min(max(iy + 1, 0), h - 1)
    x0, x1 = min(max(ix, 0), w - 1), min(max(ix + 1, 0), w - 1)
    acc = ((unit - fy) * ((unit - fx) * prev[y0, x0, c] + fx * prev[y0, x1, c])
           + fy * ((unit - fx) * prev[y1, x0, c] + fx * prev[y1, x1, c]))
    return (acc + unit * unit // 2) // (unit * unit)


@jit
def refine_search(cur, prev, phases, sharp, unit, base, reach, limit, block, penalty, out):
    """out int64 (by, bx, 2) <- per block the vector (1/``unit`` pixels) within ``reach`` units of
    ``base`` (each component clipped to +-``limit``) of least SAD (every channel), plus
    ``penalty`` unless it is ``base`` itself; the same visiting order and strict comparison as
    :func:`block_search`."""
    h, w, nc = cur.shape
    for by in range(out.shape[0]):
        y0 = by * block
        y1 = min(y0 + block, h)
        for bx in range(out.shape[1]):
            x0 = bx * block
            x1 = min(x0 + block, w)
            best = np.inf
            by_, bx_ = base[by, bx, 0], base[by, bx, 1]
            vy, vx = by_, bx_
            for qy in range(-reach, reach + 1):
                for qx in range(-reach, reach + 1):
                    cy = min(max(by_ + qy, -limit), limit)
                    cx = min(max(bx_ + qx, -limit), limit)
                    cost = penalty if (qy != 0 or qx != 0) else 0.0
                    if cost >= best:
                        continue
                    sad = 0
                    for y in range(y0, y1):
                        for x in range(x0, x1):
                            for c in range(nc):
                                sad += abs(cur[y, x, c] - moved_sample(prev, phases, sharp, unit, c, y, x, cy, cx))
                        if cost + sad >= best:
                            break
                    cost += sad
                    if cost < best:
                        best = cost
                        vy, vx = cy, cx
            out[by, bx, 0] = vy
            out[by, bx, 1] = vx
