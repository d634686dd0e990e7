"""Compares philox.py (and the Philox weight scheme's counter layout) bit for bit with the Java class.

Compiles src/main/java/facm/tensor/Philox.java with the JDK that tools/find-jdk.sh finds, runs PhiloxDump.java on
several (seed, counter range) cases — including counters of the form (k << 32) + i used by the weight scheme — and
compares all four words, the uniform and the normal. Needs numpy and a JDK >= 25; no torch.

Usage: python3 tools/reference/check_philox_java.py [COUNT_PER_CASE]
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import philox  # noqa: E402

# (seed, first counter): small and huge seeds, negative seeds, counters across the 32-bit boundary and at the
# starts of weight tensors k = 0, 1, 37 of the weight scheme.
CASES = [
    (0, 0),
    (1234, 0),
    (1234, 1 << 32),
    (1234, 37 << 32),
    (99, (5 << 32) - 1000),
    (-1, 0xFFFFFFFF00000000),
    (0x123456789ABCDEF, 123456789),
]


def find_jdk():
    out = subprocess.run(["bash", os.path.join(REPO, "tools", "find-jdk.sh")], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit("no JDK >= 25 found:\n" + out.stderr)
    return out.stdout.strip()


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    jdk = find_jdk()
    with tempfile.TemporaryDirectory(prefix="philox-check-") as tmp:
        subprocess.run([os.path.join(jdk, "bin", "javac"), "-d", tmp,
                        os.path.join(REPO, "src/main/java/facm/tensor/Philox.java")], check=True)
        total = 0
        for seed, first in CASES:
            dump = os.path.join(tmp, "dump.bin")
            subprocess.run([os.path.join(jdk, "bin", "java"), "-cp", tmp, os.path.join(HERE, "PhiloxDump.java"),
                            str(seed), str(first), str(count), dump], check=True)
            java = np.fromfile(dump, dtype="<u4").reshape(count, 6)
            counters = np.arange(count, dtype=np.uint64) + np.uint64(first)
            words = philox.block(seed, counters)
            for j in range(4):
                bad = np.nonzero(words[j] != java[:, j])[0]
                if bad.size:
                    i = int(bad[0])
                    raise SystemExit(f"seed {seed} counter {first + i:#x}: word {j} python {int(words[j][i]):#010x} "
                                     f"java {int(java[i, j]):#010x} ({bad.size} mismatches)")
            uni = philox.uniform(seed, counters).view(np.uint32)
            nor = philox.normal(seed, counters).view(np.uint32)
            for name, got, col in (("uniform", uni, 4), ("normal", nor, 5)):
                bad = np.nonzero(got != java[:, col])[0]
                if bad.size:
                    i = int(bad[0])
                    raise SystemExit(f"seed {seed} counter {first + i:#x}: {name} python bits {int(got[i]):#010x} "
                                     f"java {int(java[i, col]):#010x} ({bad.size} of {count} differ)")
            total += count
            print(f"seed {seed:>20} counters {first:#018x} + [0, {count}): words, uniform, normal identical")
    print(f"philox.py matches facm.tensor.Philox on {total} counters")


if __name__ == "__main__":
    main()
