#!/usr/bin/python3
"""Break a `perf script -F ip,sym` dump (recorded with --call-graph dwarf) down by caller.

    perf script -i perf.data -F ip,sym > stacks.txt
    /usr/bin/python3 bench/perf_breakdown.py stacks.txt rsi::export_tiles "rsi::(anonymous namespace)::TileWriter::write"

For every FRAME prefix given: the share of all samples whose stack contains it, split by its direct
callees, and split by what the leaf is doing (file creation, write(2), memcpy, malloc, ...).
Used by bench/profile_tile.sh; see docs/BENCHMARKS.md.
"""
import collections
import re
import sys

LEAF_CLASSES = [
    ("kernel: file create (openat -> ext4 inode allocation)", "__x64_sys_openat"),
    ("kernel: write(2), copy into the page cache", "ksys_write"),
    ("kernel: read(2)", "ksys_read"),
    ("kernel: rename(2)", "__x64_sys_rename"),
    ("kernel: unlink(2)", "__x64_sys_unlink"),
    ("kernel: stat", "newfstatat"),
    ("kernel: page faults", "exc_page_fault"),
    ("user: memcpy/memmove", "__memmove_avx"),
    ("user: memcpy/memmove", "__memcpy_avx"),
    ("user: malloc/free", "_int_free"),
    ("user: malloc/free", "_int_malloc"),
    ("user: malloc/free", "malloc_consolidate"),
    ("user: malloc/free", "unlink_chunk"),
    ("user: malloc/free", "cfree"),
    ("GDALIdentifyDriverEx (driver probing)", "GDALIdentifyDriverEx"),
    ("dynamic linking (symbol lookup)", "do_lookup_x"),
    ("libtorch static initialisation", "c10::"),
]


def load(path):
    samples, cur = [], []
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if not line.strip() or not line.startswith((" ", "\t")):
            if cur:
                samples.append(cur)
            cur = []
            continue
        parts = line.strip().split(None, 1)
        cur.append(re.sub(r"\+0x[0-9a-f]+", "", parts[1] if len(parts) > 1 else "?"))
    if cur:
        samples.append(cur)
    return samples


def classify(stack):
    joined = " | ".join(stack)
    for name, key in LEAF_CLASSES:
        if key in joined:
            return name
    return "other (leaf %s)" % stack[0][:60]


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    samples = load(sys.argv[1])
    n = len(samples)
    print("%d samples" % n)
    for parent in sys.argv[2:]:
        callees, leaves, total = collections.Counter(), collections.Counter(), 0
        for s in samples:  # leaf first
            for i, f in enumerate(s):
                if f.startswith(parent):
                    total += 1
                    callees[s[i - 1] if i > 0 else "<self>"] += 1
                    leaves[classify(s)] += 1
                    break
        print("\n== %s: %.1f%% of samples" % (parent, 100.0 * total / max(n, 1)))
        print("   by callee:")
        for k, v in callees.most_common(8):
            print("   %5.1f%%  %s" % (100.0 * v / n, k[:110]))
        print("   by leaf activity:")
        for k, v in leaves.most_common(8):
            print("   %5.1f%%  %s" % (100.0 * v / n, k))


if __name__ == "__main__":
    main()
