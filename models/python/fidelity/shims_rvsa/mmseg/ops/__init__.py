# `resize`/`Upsample` are bound by the harness from the official mmseg/ops/wrappers.py.
