"""Torch-free readers for the two fixture formats, written the way the Java readers must work:

* safetensors: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}, __metadata__},
  then the raw little-endian tensor bytes (offsets relative to the end of the header).
* PyTorch zip checkpoints (torch.save): a zip with <root>/data.pkl (a pickle, protocol 2) and one file
  <root>/data/<key> per storage. Tensors are pickled as torch._utils._rebuild_tensor_v2(storage, offset, size,
  stride, requires_grad, backward_hooks[, metadata]) where the storage is a persistent id
  ('storage', torch.<Type>Storage, key, location, numel).

Plus the checkpoint loader rule of facm-spec.md §8.
"""
import argparse
import collections
import json
import pickle
import struct
import zipfile

import numpy as np

SAFETENSORS_DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64, "BF16": np.uint16,
                      "F16": np.float16, "BOOL": np.bool_, "U8": np.uint8}
TORCH_STORAGES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                  "BFloat16Storage": np.uint16, "IntStorage": np.int32, "LongStorage": np.int64,
                  "BoolStorage": np.bool_, "ByteStorage": np.uint8}


def bf16_bits_to_f32(bits):
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


def f32_to_bf16_bits(values):
    """Round to nearest even, like facm.tensor.Bf16.fromFloat for finite values."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def read_safetensors(path):
    """({name: numpy array}, metadata dict). BF16 tensors come back as float32."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = memoryview(blob)[8 + n:]
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype = np.dtype(SAFETENSORS_DTYPES[entry["dtype"]]).newbyteorder("<")
        arr = np.frombuffer(data[begin:end], dtype=dtype).reshape(entry["shape"]).copy()
        tensors[name] = bf16_bits_to_f32(arr) if entry["dtype"] == "BF16" else arr
    return tensors, meta


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(TORCH_STORAGES[name]).newbyteorder("<")


class TorchTensor:
    """A tensor read from a checkpoint: numpy values plus the torch dtype name (bf16 values widened to float32)."""

    def __init__(self, values, storage_name):
        self.values = values
        self.storage = storage_name

    def __repr__(self):
        return f"TorchTensor({self.storage}, shape={self.values.shape})"


def read_torch_checkpoint(path):
    """Unpickles a torch.save zip without torch; tensors become TorchTensor objects."""
    with zipfile.ZipFile(path) as zf:
        pkl_names = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl_names) != 1:
            raise ValueError(f"{path}: expected one data.pkl in the zip, found {pkl_names}")
        root = pkl_names[0][:-len("data.pkl")]
        byteorder = zf.read(root + "byteorder").decode() if root + "byteorder" in zf.namelist() else "little"
        if byteorder != "little":
            raise ValueError(f"{path}: byteorder {byteorder!r} not supported")
        storages = {}

        def rebuild_tensor(storage, offset, size, stride, requires_grad, hooks, metadata=None):
            kind, raw = storage
            itemsize = raw.dtype.itemsize
            view = np.lib.stride_tricks.as_strided(raw[offset:], shape=tuple(size),
                                                   strides=tuple(s * itemsize for s in stride)).copy()
            if kind.name == "BFloat16Storage":
                view = bf16_bits_to_f32(view)
            return TorchTensor(view, kind.name)

        class Unpickler(pickle.Unpickler):
            def find_class(self, module, name):
                if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                    return rebuild_tensor
                if module == "torch" and name in TORCH_STORAGES:
                    return _StorageType(name)
                if (module, name) == ("collections", "OrderedDict"):
                    return collections.OrderedDict
                if (module, name) == ("argparse", "Namespace"):
                    return argparse.Namespace
                raise pickle.UnpicklingError(f"{path}: unexpected global {module}.{name}")

            def persistent_load(self, pid):
                tag, kind, key, _location, numel = pid
                if tag != "storage":
                    raise pickle.UnpicklingError(f"{path}: unknown persistent id {pid!r}")
                if key not in storages:
                    raw = np.frombuffer(zf.read(f"{root}data/{key}"), dtype=kind.dtype)
                    if raw.size != numel:
                        raise ValueError(f"{path}: storage {key} has {raw.size} elements, pickle says {numel}")
                    storages[key] = (kind, raw)
                return storages[key]

        with zf.open(pkl_names[0]) as f:
            return Unpickler(f).load()


def strip_prefix(state, prefix):
    return collections.OrderedDict((k[len(prefix):], v) for k, v in state.items() if k.startswith(prefix))


def select_weights(checkpoint):
    """facm-spec.md §8 loader rule: 'emas' → ema_models.1.ema_model.*; else 'ema'; else 'model' minus
    'module.' / '_orig_mod.' prefixes. Returns (which, {key: TorchTensor})."""
    if "emas" in checkpoint:
        return "emas[ema_models.1]", strip_prefix(checkpoint["emas"], "ema_models.1.ema_model.")
    if "ema" in checkpoint:
        return "ema", collections.OrderedDict(checkpoint["ema"])
    state = collections.OrderedDict()
    for k, v in checkpoint["model"].items():
        for prefix in ("module.", "_orig_mod."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        state[k] = v
    return "model", state
