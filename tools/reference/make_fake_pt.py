#!/usr/bin/env python3
"""Writes small torch.save-format checkpoints WITHOUT PyTorch, for the Java checkpoint tests.

torch.save (PyTorch >= 1.6) writes a zip: <folder>/data.pkl (the pickled object), <folder>/data/<key> (one entry
per storage, raw little-endian bytes), <folder>/version, <folder>/byteorder. Tensors pickle as
    torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks)
and storages as persistent ids ('storage', torch.FloatStorage, key, location, numel). Here fake modules named
torch / torch._utils / torch._tensor stand in for PyTorch, so the standard pickle module emits the same opcodes
torch.save does (protocol 2 by default). Output: src/test/resources/checkpoint/*.pt and expected.json (what the Java
loader must return for each file and --which choice).

Usage: python3 tools/reference/make_fake_pt.py [OUTPUT_FOLDER]
"""
import argparse
import collections
import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile

# ---------------------------------------------------------------- fake torch modules

torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")
torch_tensor = types.ModuleType("torch._tensor")
torch._utils = torch_utils
torch._tensor = torch_tensor
sys.modules.update({"torch": torch, "torch._utils": torch_utils, "torch._tensor": torch_tensor})


def _fake_function(module, name):
    def f(*args):
        raise RuntimeError("fake " + name + " is never called")
    f.__module__ = module.__name__
    f.__name__ = f.__qualname__ = name
    setattr(module, name, f)
    return f


_rebuild_tensor_v2 = _fake_function(torch_utils, "_rebuild_tensor_v2")
_rebuild_parameter = _fake_function(torch_utils, "_rebuild_parameter")
_rebuild_from_type_v2 = _fake_function(torch_tensor, "_rebuild_from_type_v2")

# element format for struct, storage class, safetensors dtype name
DTYPES = {
    "F32": ("f", "FloatStorage"), "F64": ("d", "DoubleStorage"), "F16": ("e", "HalfStorage"),
    "BF16": (None, "BFloat16Storage"), "I64": ("q", "LongStorage"), "I32": ("i", "IntStorage"),
    "BOOL": ("?", "BoolStorage"), "U8": ("B", "ByteStorage"),
}
STORAGE_CLASSES = {}
for _dt, (_fmt, _cls) in DTYPES.items():
    c = type(_cls, (), {})
    c.__module__ = "torch"
    c.__qualname__ = _cls
    setattr(torch, _cls, c)
    STORAGE_CLASSES[_dt] = c
TensorClass = type("Tensor", (), {})
TensorClass.__module__ = "torch"
torch.Tensor = TensorClass


def encode(dtype, values):
    fmt, _ = DTYPES[dtype]
    if dtype == "BF16":  # values are chosen exactly representable: the top half of the float32 bits
        return b"".join(struct.pack("<I", struct.unpack("<I", struct.pack("<f", v))[0])[2:] for v in values)
    return struct.pack("<%d%s" % (len(values), fmt), *values)


class Storage:
    def __init__(self, key, dtype, values, location="cpu"):
        self.key, self.dtype, self.values, self.location = key, dtype, list(values), location


class Tensor:
    """Pickles like torch.Tensor: REDUCE of _rebuild_tensor_v2 with a persistent-id storage."""

    def __init__(self, storage, shape, offset=0, stride=None):
        self.storage, self.shape, self.offset = storage, tuple(shape), offset
        if stride is None:
            stride, n = [], 1
            for d in reversed(self.shape):
                stride.insert(0, n)
                n *= d
        self.stride = tuple(stride)

    def __reduce_ex__(self, proto):
        return (_rebuild_tensor_v2, (self.storage, self.offset, self.shape, self.stride, False,
                                     collections.OrderedDict()))


class Parameter(Tensor):
    def __reduce_ex__(self, proto):
        return (_rebuild_parameter, (Tensor(self.storage, self.shape, self.offset, self.stride), True,
                                     collections.OrderedDict()))


class TensorWithState(Tensor):
    def __reduce_ex__(self, proto):
        inner = Tensor(self.storage, self.shape, self.offset, self.stride).__reduce_ex__(proto)
        return (_rebuild_from_type_v2, (inner[0], TensorClass, inner[1], {"note": "python attribute"}))


class TorchPickler(pickle.Pickler):
    def __init__(self, f, protocol, storages):
        super().__init__(f, protocol=protocol)
        self.storages = storages

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            self.storages[obj.key] = obj
            return ("storage", STORAGE_CLASSES[obj.dtype], obj.key, obj.location, len(obj.values))
        return None


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


class Builder:
    """Makes tensors with distinct, exactly representable values and remembers what each should read back as."""

    def __init__(self):
        self.next_key = 0
        self.counter = 0

    def values(self, dtype, n):
        out = []
        for i in range(n):
            self.counter += 1
            if dtype in ("F32", "F64", "F16", "BF16"):
                out.append(((self.counter % 61) - 30) * 0.125)
            elif dtype == "BOOL":
                out.append(self.counter % 2 == 0)
            elif dtype == "U8":
                out.append(self.counter % 251)
            else:
                out.append(self.counter * 1000003 - 7)
        return out

    def tensor(self, dtype, shape, cls=Tensor, location="cpu"):
        vals = self.values(dtype, numel(shape))
        st = Storage(str(self.next_key), dtype, vals, location)
        self.next_key += 1
        return cls(st, shape)


def expect(t):
    vals = t.storage.values[t.offset:t.offset + numel(t.shape)]
    vals = [int(v) if isinstance(v, bool) else v for v in vals]
    return {"dtype": t.storage.dtype, "shape": list(t.shape), "values": vals}


def write_pt(path, obj, folder="archive", protocol=2, compression=zipfile.ZIP_STORED, pad_data=False,
             raw_pickle=None, zip64=False):
    buf = io.BytesIO()
    storages = {}
    if raw_pickle is None:
        TorchPickler(buf, protocol, storages).dump(obj)
        code = buf.getvalue()
    else:
        code = raw_pickle
    limits = zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT
    if zip64:  # tiny limits make a small file use every ZIP64 record a multi-GB checkpoint would
        zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = 16, 2
    try:
        write_zip(path, folder, code, storages, compression, pad_data)
    finally:
        zipfile.ZIP64_LIMIT, zipfile.ZIP_FILECOUNT_LIMIT = limits


def write_zip(path, folder, code, storages, compression, pad_data):
    def entry(name):  # fixed timestamps keep the generated files byte-identical from run to run
        info = zipfile.ZipInfo(folder + "/" + name, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = compression
        return info

    with zipfile.ZipFile(path, "w", compression=compression) as z:
        z.writestr(entry("data.pkl"), code)
        z.writestr(entry("byteorder"), "little")
        for key, st in sorted(storages.items()):
            info = entry("data/" + key)
            if pad_data:  # like torch: pad the local extra field so the data starts 64-byte aligned
                start = z.fp.tell() + 30 + len(info.filename.encode()) + 4
                info.extra = b"FB" + struct.pack("<H", (-start) % 64) + b"Z" * ((-start) % 64)
            z.writestr(info, encode(st.dtype, st.values))
        z.writestr(entry("version"), "3\n")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "test", "resources", "checkpoint")
    os.makedirs(out, exist_ok=True)
    b = Builder()
    cases = []

    # 1. {'ema': ..., 'model': ...} as LightningDiT's trainer and FACM's extract_ema.py write (protocol 2).
    ema = collections.OrderedDict()
    ema["x_embedder.proj.weight"] = b.tensor("F32", (4, 2, 1, 1))
    ema["x_embedder.proj.bias"] = b.tensor("F32", (4,), location="cuda:0")
    ema["y_embedder.embedding_table.weight"] = b.tensor("BF16", (3, 4))
    ema["pos_embed"] = b.tensor("F16", (1, 2, 4))
    ema["scale"] = b.tensor("F32", ())
    ema["empty"] = b.tensor("F32", (0, 3))
    ema._metadata = collections.OrderedDict([("", {"version": 1})])  # what nn.Module.state_dict() attaches
    model = collections.OrderedDict([("x_embedder.proj.weight", b.tensor("F32", (4, 2, 1, 1)))])
    write_pt(os.path.join(out, "ema_model.pt"), {"ema": ema, "model": model, "config": {"depth": 2, "lr": 1e-4},
                                                 "_extracted_from": "0100000.pt"})
    cases.append({"file": "ema_model.pt", "which": "auto", "chosen": "'ema'",
                  "tensors": {k: expect(v) for k, v in ema.items()}})
    cases.append({"file": "ema_model.pt", "which": "ema", "chosen": "'ema'",
                  "tensors": {k: expect(v) for k, v in ema.items()}})
    cases.append({"file": "ema_model.pt", "which": "model", "chosen": "'model'",
                  "tensors": {k: expect(v) for k, v in model.items()}})

    # 2. FACM training checkpoint: DDP 'module.' keys, PostHocEMA 'emas', optimizer, argparse args (protocol 2).
    w1 = b.tensor("F32", (2, 3))
    b1 = b.tensor("F64", (3,))
    emas = collections.OrderedDict()
    emas["ema_models.0.initted"] = b.tensor("BOOL", ())
    emas["ema_models.0.step"] = b.tensor("I64", ())
    emas["ema_models.0.ema_model.a.weight"] = b.tensor("F32", (2, 3))
    emas["ema_models.1.initted"] = b.tensor("BOOL", ())
    emas["ema_models.1.step"] = b.tensor("I64", ())
    emas["ema_models.1.ema_model.a.weight"] = w1
    emas["ema_models.1.ema_model.module.b.bias"] = b1
    mw = b.tensor("F32", (2, 3))
    mb = b.tensor("F64", (3,))
    model = collections.OrderedDict([("module.a.weight", mw), ("module.b.bias", mb)])
    opt = {"state": {0: {"step": b.tensor("F32", ()), "exp_avg": b.tensor("F32", (2, 3))}},
           "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "params": [0, 1], "amsgrad": False}]}
    args = argparse.Namespace(lr=1e-4, model="LightningDiT-XL/1", flags=[1, 2], nothing=None, big=2 ** 70,
                              ratio=-0.5, name="ünïcode")
    write_pt(os.path.join(out, "training.pt"), {"model": model, "emas": emas, "opt": opt, "args": args,
                                                "epoch": 3, "step": 1000, "scheduler": None}, folder="0001000",
             pad_data=True)
    sel = {"a.weight": expect(w1), "b.bias": expect(b1)}
    cases.append({"file": "training.pt", "which": "auto", "chosen": "'emas' (ema_models.1.ema_model.*)",
                  "tensors": sel})
    cases.append({"file": "training.pt", "which": "ema", "chosen": "'emas' (ema_models.1.ema_model.*)",
                  "tensors": sel})
    cases.append({"file": "training.pt", "which": "model", "chosen": "'model'",
                  "tensors": {"a.weight": expect(mw), "b.bias": expect(mb)}})

    # 3. A bare state dict at the top level, protocol 4 (FRAME, MEMOIZE, STACK_GLOBAL), torch.compile + DDP
    #    prefixes, two tensors viewing one storage, a non-tensor entry, integer tensors.
    shared = Storage(str(b.next_key), "F32", b.values("F32", 10))
    b.next_key += 1
    top = collections.OrderedDict()
    top["_orig_mod.module.blocks.0.norm1.weight"] = Tensor(shared, (2, 3))
    top["_orig_mod.module.blocks.0.norm2.weight"] = Tensor(shared, (4,), offset=6)
    top["_orig_mod.counts"] = b.tensor("I32", (3,))
    top["_orig_mod.bytes"] = b.tensor("U8", (5,))
    top["note"] = "not a tensor"
    write_pt(os.path.join(out, "plain_p4.pt"), top, folder="plain_p4", protocol=4)
    cases.append({"file": "plain_p4.pt", "which": "auto", "chosen": "the top level", "tensors": {
        "blocks.0.norm1.weight": expect(top["_orig_mod.module.blocks.0.norm1.weight"]),
        "blocks.0.norm2.weight": expect(top["_orig_mod.module.blocks.0.norm2.weight"]),
        "counts": expect(top["_orig_mod.counts"]), "bytes": expect(top["_orig_mod.bytes"])}})
    cases.append({"file": "plain_p4.pt", "which": "ema", "error": "has no 'emas' or 'ema' entry"})

    # 4. Parameters and a tensor with Python state, protocol 5, deflated entries.
    p = b.tensor("F32", (3, 2), cls=Parameter)
    s = b.tensor("BF16", (2,), cls=TensorWithState)
    write_pt(os.path.join(out, "params_p5.pt"), {"model": {"p.weight": p, "s.bias": s}}, folder="params",
             protocol=5, compression=zipfile.ZIP_DEFLATED)
    cases.append({"file": "params_p5.pt", "which": "auto", "chosen": "'model'",
                  "tensors": {"p.weight": expect(p), "s.bias": expect(s)}})

    # 4b. The same in a ZIP64 archive (end records, extra fields), as torch writes past 4 GB.
    write_pt(os.path.join(out, "zip64.pt"), {"model": {"p.weight": p, "s.bias": s}}, folder="big", zip64=True)
    cases.append({"file": "zip64.pt", "which": "auto", "chosen": "'model'",
                  "tensors": {"p.weight": expect(p), "s.bias": expect(s)}})

    # 5. A tensor that is a transposed view: the reader must refuse it and name the key.
    t = b.tensor("F32", (2, 3))
    t.stride = (1, 2)
    write_pt(os.path.join(out, "noncontig.pt"), {"model": {"w.t": t}})
    cases.append({"file": "noncontig.pt", "which": "auto", "error": "tensor 'w.t' is not contiguous"})

    # 6. Malicious pickles: os.system at the top (hand-assembled, as a crafted file would be), and a code-running
    #    global hidden after legitimate tensors.
    evil = b"\x80\x02cos\nsystem\nq\x00X\x0a\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03."
    write_pt(os.path.join(out, "malicious_os.pt"), None, raw_pickle=evil)
    cases.append({"file": "malicious_os.pt", "which": "auto",
                  "error": "refusing to unpickle 'os.system' at byte 2 of archive/data.pkl: "
                           "only state-dict classes are allowed"})

    class Evil:  # protocol 2 writes builtins as __builtin__ (pickle's fix_imports), as torch.save does
        def __reduce__(self):
            return (exec, ("print('pwned')",))
    write_pt(os.path.join(out, "malicious_nested.pt"), {"ema": {"w": b.tensor("F32", (2,))}, "x": Evil()})
    cases.append({"file": "malicious_nested.pt", "which": "auto",
                  "error": "refusing to unpickle '__builtin__.exec'"})

    with open(os.path.join(out, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("wrote %d cases to %s" % (len(cases), os.path.abspath(out)))


if __name__ == "__main__":
    main()
