"""Philox4x32-10 in numpy, bit-identical to the Java class src/main/java/facm/tensor/Philox.java.

Layout (the same as the Java class, which is the contract):
  counter: c0 = low 32 bits of a 64-bit counter, c1 = high 32 bits, c2 = c3 = 0
  key:     k0 = low 32 bits of the 64-bit seed, k1 = high 32 bits
  uniform: u = (w0 + 0.5) * 2^-32, in (0, 1), computed in float64 and rounded to float32
  normal:  Box-Muller in float64 on words 0 and 1: sqrt(-2 ln u0) * cos(2 pi u1), rounded once to float32

The float64 expressions are written in the same order as the Java code (-2.0 * log(u0) and (2.0 * pi) * u1), so the
only possible source of a difference is the last bit of the platform's double log/cos; a float32 result differs only
if that last bit straddles a float32 rounding boundary (probability about 2^-29 per value; none seen in the checks).

Run `python3 tools/reference/philox.py` for the self-test (numpy only).
"""
import math
import sys

import numpy as np

MASK32 = 0xFFFFFFFF
MASK64 = 0xFFFFFFFFFFFFFFFF
M0 = 0xD2511F53
M1 = 0xCD9E8D57
W0 = 0x9E3779B9
W1 = 0xBB67AE85
TWO_POW_M32 = 1.0 / 4294967296.0
ROUNDS = 10


def _key_words(seed):
    """(k0, k1) of a seed given as a Python int; negative seeds wrap like a Java long."""
    s = int(seed) & MASK64
    return s & MASK32, s >> 32


def block_scalar(counter4, key2):
    """One Philox4x32-10 block in plain integer arithmetic, for any 4-word counter and 2-word key.

    Kept deliberately simple (no numpy) as an independent check of the vectorized version.
    """
    c0, c1, c2, c3 = (int(w) & MASK32 for w in counter4)
    k0, k1 = (int(w) & MASK32 for w in key2)
    for _ in range(ROUNDS):
        p0 = M0 * c0
        p1 = M1 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & MASK32, p1 & MASK32, ((p0 >> 32) ^ c3 ^ k1) & MASK32, p0 & MASK32
        k0 = (k0 + W0) & MASK32
        k1 = (k1 + W1) & MASK32
    return c0, c1, c2, c3


def block(seed, counters):
    """Output words (w0, w1, w2, w3), each a uint32 array shaped like `counters` (uint64 array-like).

    Matches Philox.block(seed, counter, out) of the Java class element by element.
    """
    counters = np.asarray(counters, dtype=np.uint64)
    mask = np.uint64(MASK32)
    shift = np.uint64(32)
    c0 = counters & mask
    c1 = counters >> shift
    c2 = np.zeros_like(c0)
    c3 = np.zeros_like(c0)
    k0, k1 = _key_words(seed)
    m0 = np.uint64(M0)
    m1 = np.uint64(M1)
    for _ in range(ROUNDS):
        # Both factors are < 2^32, so the 64-bit product is exact in uint64.
        p0 = m0 * c0
        p1 = m1 * c2
        c0, c1, c2, c3 = (p1 >> shift) ^ c1 ^ np.uint64(k0), p1 & mask, (p0 >> shift) ^ c3 ^ np.uint64(k1), p0 & mask
        k0 = (k0 + W0) & MASK32
        k1 = (k1 + W1) & MASK32
    return tuple(w.astype(np.uint32) for w in (c0, c1, c2, c3))


def _unit(word):
    """(w + 0.5) * 2^-32 in float64: exact, since w + 0.5 needs at most 33 significant bits."""
    return (word.astype(np.float64) + 0.5) * TWO_POW_M32


def uniform(seed, counters):
    """float32 uniforms in (0,1), one per counter (Philox.uniform)."""
    w0, _, _, _ = block(seed, counters)
    return _unit(w0).astype(np.float32)


def normal(seed, counters):
    """float32 standard normals, one per counter (Philox.normal): Box-Muller on words 0 and 1."""
    w0, w1, _, _ = block(seed, counters)
    return normal_of_words(w0, w1)


def normal_of_words(w0, w1):
    u0 = _unit(w0)
    u1 = _unit(w1)
    # Same evaluation order as Java: Math.sqrt(-2.0 * Math.log(u0)) * Math.cos(2.0 * Math.PI * u1).
    return (np.sqrt(-2.0 * np.log(u0)) * np.cos((2.0 * math.pi) * u1)).astype(np.float32)


def normal_range(seed, first_counter, count, chunk=1 << 22):
    """Normals for counters first_counter .. first_counter + count - 1, generated in chunks to bound memory."""
    out = np.empty(count, dtype=np.float32)
    for start in range(0, count, chunk):
        n = min(chunk, count - start)
        counters = np.arange(n, dtype=np.uint64) + np.uint64(first_counter + start)
        out[start:start + n] = normal(seed, counters)
    return out


# Random123's published known-answer vectors for Philox4x32-10 (counter words, key words, output words).
KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((MASK32,) * 4, (MASK32, MASK32), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
]

# Values printed by the Java class itself (javac + a 10-line driver, see README.md "Checking philox.py against Java"):
# (seed, counter) -> (w0, w1, w2, w3) as unsigned ints, uniform float32 bits, normal float32 bits.
JAVA_VALUES = {
    (0, 0): ((0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8), 0x3ECC4FD2, 0x3F7DBB33),  # 0.39904648, 0.9911377
    (1234, 0): ((0x2090B348, 0xDA7CF0AB, 0x4401906F, 0xCBCA470E), 0x3E0242CD, 0x3F9D54F6),  # 0.12720795, 1.2291553
    (1234, (1 << 32) + 5): ((0x039DA951, 0x040D1EE0, 0xE7BDF8EF, 0x97DC8A34), 0x3C676A54, 0x4039E23F),  # 2.904434
    (99, 5 << 32): ((0xA5F10114, 0xE71F70AD, 0x93138D55, 0x49AED0A6), 0x3F25F101, 0x3F434F27),  # 0.6482087, 0.7629265
    (-1, 0xFFFFFFFF00000000): ((0x69D460B8, 0x422820CE, 0xC6363159, 0xBE42B92F), 0x3ED3A8C1, 0xBD90073B),  # -0.0703
}


def self_test():
    for counter4, key2, expected in KNOWN_ANSWERS:
        got = block_scalar(counter4, key2)
        assert got == expected, f"block_scalar{counter4, key2} = {[hex(g) for g in got]}, want {[hex(e) for e in expected]}"
    # The vectorized block with the Java layout (c2 = c3 = 0) against the scalar one on awkward seeds and counters.
    seeds = [0, 1, 1234, 99, -1, -7, (1 << 63) - 1, 0x123456789ABCDEF0]
    counters = [0, 1, 2, 0xFFFFFFFF, 1 << 32, (5 << 32) + 17, (1 << 64) - 1, 0xDEADBEEFCAFEBABE]
    for seed in seeds:
        vec = block(seed, np.array(counters, dtype=np.uint64))
        k0, k1 = _key_words(seed)
        for i, ctr in enumerate(counters):
            want = block_scalar((ctr & MASK32, ctr >> 32, 0, 0), (k0, k1))
            got = tuple(int(w[i]) for w in vec)
            assert got == want, f"block(seed={seed}, counter={ctr:#x}) = {got}, scalar says {want}"
    for (seed, ctr), (words, uniform_bits, normal_bits) in JAVA_VALUES.items():
        got = tuple(int(w[0]) for w in block(seed, np.array([ctr], dtype=np.uint64)))
        assert got == words, f"block({seed}, {ctr}) = {[hex(g) for g in got]}, Java printed {[hex(w) for w in words]}"
        if uniform_bits is not None:
            u = uniform(seed, np.array([ctr], dtype=np.uint64)).view(np.uint32)[0]
            assert int(u) == uniform_bits, f"uniform({seed}, {ctr}) bits {int(u):#010x}, Java {uniform_bits:#010x}"
        if normal_bits is not None:
            n = normal(seed, np.array([ctr], dtype=np.uint64)).view(np.uint32)[0]
            assert int(n) == normal_bits, f"normal({seed}, {ctr}) bits {int(n):#010x}, Java {normal_bits:#010x}"
    # Statistical sanity of the transforms (catches a wrong word or scale, not a wrong bit).
    z = normal_range(7, 1 << 32, 200_000)
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1.0) < 0.01, f"normal mean {z.mean()} std {z.std()}"
    u = uniform(7, np.arange(200_000, dtype=np.uint64))
    assert 0.0 < float(u.min()) and float(u.max()) < 1.0 and abs(float(u.mean()) - 0.5) < 0.005
    print(f"philox.py self-test passed ({len(KNOWN_ANSWERS)} known answers, {len(seeds) * len(counters)} "
          f"vectorized-vs-scalar blocks, {len(JAVA_VALUES)} Java values)")


if __name__ == "__main__":
    self_test()
    sys.exit(0)
