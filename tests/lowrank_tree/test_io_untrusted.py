"""load on crafted and damaged files, and save/load on bad paths.

Every crafted file is built here from the documented format (the checksums are recomputed
independently, as an attacker could), so each test reaches the check it is about.  A file that
declares far more data than it holds must be refused before anything is inflated or allocated:
peak memory during ``load`` is measured with tracemalloc (which NumPy's allocations report to).
"""

import builtins
import errno
import hashlib
import io as bytes_io
import json
import os
import struct
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lowrank_tree import LowRankSegmentTree, load, save
from lowrank_tree.fit import Cascade
from lowrank_tree.io import check_writable

META = "__metadata__.npy"
MiB = 2**20
tmp_settings = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=30)


# -- building files by hand ----------------------------------------------------------
def npy(array):
    buf = bytes_io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(array), allow_pickle=True)
    return buf.getvalue()


def npy_header(shape, descr, fortran=False):
    buf = bytes_io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": fortran, "shape": shape})
    return buf.getvalue()


def entries_of(path):
    """``{name: bytes}`` of every zip entry, in archive order (the file is one we wrote)."""
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def write_zip(path, entries, compression=zipfile.ZIP_STORED):
    path.unlink(missing_ok=True)
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def meta_of(entries):
    return json.loads(np.load(bytes_io.BytesIO(entries[META])).tobytes())


def metadata_digest(meta):
    """The documented metadata checksum, computed independently of the library."""
    body = {k: v for k, v in meta.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def arrays_digest(arrays):
    """The documented array checksum: name, dtype, shape, C-order bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = arrays[name]
        h.update(f"{name}\0{a.dtype.str}\0{tuple(a.shape)}\0".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def set_meta(entries, meta, sign=True):
    if sign:
        meta["checksum"]["value"] = metadata_digest(meta)
    entries[META] = npy(np.frombuffer(json.dumps(meta).encode(), np.uint8))
    return entries


def patch_central_sizes(path, name, compress_size=None, file_size=None):
    """Rewrite the sizes the zip's central directory records for ``name`` (zip32 entries)."""
    data = bytearray(path.read_bytes())
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        name_len = struct.unpack_from("<H", data, pos + 28)[0]
        if data[pos + 46 : pos + 46 + name_len].decode() == name:
            if compress_size is not None:
                struct.pack_into("<I", data, pos + 20, compress_size)
            if file_size is not None:
                struct.pack_into("<I", data, pos + 24, file_size)
            path.write_bytes(bytes(data))
            return path
        pos = data.find(b"PK\x01\x02", pos + 46)
    raise AssertionError(f"no central directory record for {name}")


def refused(path, match, exc_type=ValueError):
    """Load ``path`` expecting ``exc_type``; the message must name the file.  Returns peak bytes."""
    tracemalloc.start()
    try:
        with pytest.raises(exc_type, match=match) as info:
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value)
    return peak


@pytest.fixture
def tree_file(tmp_path):
    rng = np.random.default_rng(3)
    tree = LowRankSegmentTree(
        rng.standard_normal((40, 30)),
        [(rng.standard_normal((40, r)), rng.standard_normal((30, r))) for r in (3, 2, 3)],
        rtol=1e-8,
    )
    return save(tree, tmp_path / "tree.npz")


@pytest.fixture
def cascade_file(tmp_path):
    rng = np.random.default_rng(4)
    casc = Cascade(
        rng.standard_normal((20, 10)),
        [(rng.standard_normal((20, r)), rng.standard_normal((10, r))) for r in (2, 0, 1)],
        errors=[0.0, 0.25, float("nan"), 0.125],
        method="randomized",
    )
    return save(casc, tmp_path / "casc.npz")


# -- the format as documented ------------------------------------------------------------
def test_checksums_follow_the_documented_format(tree_file, cascade_file):
    for path in (tree_file, cascade_file):
        entries = entries_of(path)
        meta = meta_of(entries)
        arrays = {name[:-4]: np.load(bytes_io.BytesIO(data)) for name, data in entries.items() if name != META}
        assert meta["format_version"] == 2
        assert meta["checksum"] == {"algorithm": "sha256", "value": metadata_digest(meta)}
        assert meta["arrays_sha256"] == arrays_digest(arrays)


def test_respaced_json_still_loads(tree_file):
    """The checksum covers the metadata's content, not how its JSON text is spaced."""
    entries = entries_of(tree_file)
    meta = meta_of(entries)
    entries[META] = npy(np.frombuffer(json.dumps(meta, indent=3).encode(), np.uint8))
    write_zip(tree_file, entries)
    assert load(tree_file).rtol == 1e-8


# -- edited metadata ---------------------------------------------------------------------
def flip_hex(h):
    return ("0" if h[0] != "0" else "1") + h[1:]


#: One plausible edit per metadata field: each would change what a loaded object computes or
#: reports, or is the checksum machinery itself.
EDITS = {
    "tol": lambda m: m.update(tol=0.5),
    "method": lambda m: m.update(method="exact"),
    "errors": lambda m: m["errors"].__setitem__(1, 1e-9),
    "shape": lambda m: m.update(shape=[m["shape"][0], m["shape"][1] + 1]),
    "ranks": lambda m: m["ranks"].__setitem__(0, m["ranks"][0] - 1),
    "num_orders": lambda m: m.update(num_orders=m["num_orders"] - 1),
    "dtype": lambda m: m.update(dtype="float32"),
    "kind": lambda m: m.update(kind="cascade" if m["kind"] == "tree" else "tree"),
    "saved_from_backend": lambda m: m.update(saved_from_backend="numba"),
    "library_version": lambda m: m.update(library_version="99.0"),
    "arrays_sha256": lambda m: m.update(arrays_sha256=flip_hex(m["arrays_sha256"])),
    "checksum": lambda m: m["checksum"].update(value=flip_hex(m["checksum"]["value"])),
    "format_version": lambda m: m.update(format_version=1),  # read as version 1: arrays' checksum
    "format": lambda m: m.update(format="lowrank-tree2"),
}


@pytest.mark.parametrize("which", ["tree", "cascade"])
def test_every_metadata_field_is_covered_by_the_checksum(tree_file, cascade_file, which):
    path = tree_file if which == "tree" else cascade_file
    original = entries_of(path)
    fields = set(meta_of(original))
    assert fields <= set(EDITS), f"no edit for {fields - set(EDITS)}: add one"
    for field in sorted(fields):
        entries = dict(original)
        meta = meta_of(entries)
        EDITS[field](meta)
        write_zip(path, set_meta(entries, meta, sign=False))
        if field == "format":  # names the format this is: checked before any checksum
            refused(path, r"not a lowrank-tree file \(format 'lowrank-tree2'")
        else:
            refused(path, r"checksum mismatch: .* does not match")
    # adding or removing a field is an edit too
    for edit in (lambda m: m.update(comment="hi"), lambda m: m.pop("num_orders")):
        entries = dict(original)
        meta = meta_of(entries)
        edit(meta)
        write_zip(path, set_meta(entries, meta, sign=False))
        refused(path, r"checksum mismatch: the SHA-256 of the metadata .* does not match")
    write_zip(path, original)
    assert isinstance(load(path), LowRankSegmentTree if which == "tree" else Cascade)


def test_tampered_tol_is_refused_not_applied(tree_file):
    """The original failure: tol edited to 0.5 loaded silently and queries were 30-58 % off."""
    entries = entries_of(tree_file)
    meta = meta_of(entries)
    meta["tol"] = 0.5
    write_zip(tree_file, set_meta(entries, meta, sign=False))
    refused(tree_file, r"tree\.npz: checksum mismatch: the SHA-256 of the metadata")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


@tmp_settings
@given(
    field=st.sampled_from(
        [
            "tol",
            "shape",
            "ranks",
            "num_orders",
            "dtype",
            "kind",
            "library_version",
            "saved_from_backend",
            "arrays_sha256",
            "new-field",
        ]
    ),
    value=json_values,
)
def test_any_edit_of_a_field_is_refused(tree_file, field, value):
    original = entries_of(tree_file)
    meta = meta_of(original)
    if json.dumps(meta.get(field), sort_keys=True) == json.dumps(value, sort_keys=True):
        return  # not an edit
    meta[field] = value
    entries = set_meta(dict(original), meta, sign=False)
    write_zip(tree_file, entries)
    refused(tree_file, r"checksum mismatch: the SHA-256 of the metadata")


def test_non_finite_json_in_metadata_is_a_mismatch(tree_file):
    entries = entries_of(tree_file)
    text = json.dumps(meta_of(entries)).replace('"tol": 1e-08', '"tol": NaN')
    assert "NaN" in text
    entries[META] = npy(np.frombuffer(text.encode(), np.uint8))
    write_zip(tree_file, entries)
    refused(tree_file, r"checksum mismatch: the SHA-256 of the metadata \(not computable")


# -- version 1 files ---------------------------------------------------------------------
def as_version_1(path, edit=None):
    """What a version 1 writer produced: one checksum, of the arrays only."""
    entries = entries_of(path)
    meta = meta_of(entries)
    meta["format_version"] = 1
    meta["checksum"]["value"] = meta.pop("arrays_sha256")
    if edit:
        edit(meta)
    return write_zip(path, set_meta(entries, meta, sign=False))


def test_version_1_loads_with_a_warning_and_resaves_as_version_2(tree_file, cascade_file, tmp_path):
    for path, check in ((tree_file, lambda o: o.rtol == 1e-8), (cascade_file, lambda o: o.method == "randomized")):
        reference = load(path)
        as_version_1(path)
        with pytest.warns(
            UserWarning,
            match=r"format_version 1 file, whose checksum covers the arrays "
            r"but not the metadata",
        ) as record:
            old = load(path)
        assert str(path) in str(record[0].message)
        assert record[0].filename == __file__  # points at the caller of load
        assert check(old)
        assert np.array_equal(old.base, reference.base)
        for a, b in zip(old.corrections, reference.corrections, strict=True):
            assert np.array_equal(a.U, b.U) and np.array_equal(a.V, b.V)
        upgraded = save(old, tmp_path / "upgraded.npz")
        assert meta_of(entries_of(upgraded))["format_version"] == 2
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            load(upgraded)


def test_version_1_arrays_are_still_verified(tree_file):
    def nudge_base(meta):
        meta["checksum"]["value"] = flip_hex(meta["checksum"]["value"])

    as_version_1(tree_file, nudge_base)
    refused(tree_file, r"checksum mismatch: the SHA-256 of the arrays")


# -- decompression bombs and lying sizes -------------------------------------------------
def rebuild_with(path, name, header, nbytes):
    """The archive at ``path`` with entry ``name`` replaced by a deflated run of zeros."""
    entries = entries_of(path)
    path.unlink()
    with zipfile.ZipFile(path, "w") as zf:
        for entry, data in entries.items():
            if entry == name:
                info = zipfile.ZipInfo(name)
                info.compress_type = zipfile.ZIP_DEFLATED
                with zf.open(info, "w", force_zip64=True) as out:
                    out.write(header)
                    block = bytes(MiB)
                    for _ in range(nbytes // MiB):
                        out.write(block)
                    out.write(bytes(nbytes % MiB))
            else:
                zf.writestr(entry, data)
    return path


def test_bomb_declaring_a_huge_shape_is_refused_before_inflating(tree_file):
    """A 64 MiB run of zeros (~64 KiB on disk) behind a header that disagrees with the metadata."""
    rebuild_with(tree_file, "base.npy", npy_header((2048, 4096), "<f8"), 64 * MiB)
    assert tree_file.stat().st_size < 2 * MiB
    peak = refused(tree_file, r"array 'base' has shape \(2048, 4096\) but the metadata implies \(40, 30\)")
    assert peak < 4 * MiB


def test_bomb_with_consistent_metadata_and_data_beyond_the_header(tree_file):
    """Header and metadata agree on (40, 30); the entry inflates to 64 MiB more than that."""
    rebuild_with(tree_file, "base.npy", npy_header((40, 30), "<f8"), 64 * MiB)
    peak = refused(tree_file, r"entry 'base' holds \d+ bytes of data but its \.npy header declares 9600")
    assert peak < 4 * MiB


def test_metadata_header_and_zip_agreeing_on_a_huge_array(tree_file):
    """Everything re-signed to describe a (2**22, 2**22) base: 128 TiB that the file cannot hold."""
    entries = entries_of(tree_file)
    meta = meta_of(entries)
    meta["shape"] = [2**22, 2**22]
    entries["base.npy"] = npy_header((2**22, 2**22), "<f8") + bytes(4096)
    write_zip(tree_file, set_meta(entries, meta))
    peak = refused(tree_file, r"entry 'base' holds 4096 bytes of data but its \.npy header declares 140737488355328")
    assert peak < 4 * MiB
    # ... and the zip directory lying too: a stored entry claiming more than it stores
    header_len = len(npy_header((2**22, 2**22), "<f8"))
    patch_central_sizes(tree_file, "base.npy", file_size=(header_len + 2**20) % 2**32)
    refused(tree_file, r"entry 'base' is stored uncompressed but declares")


def test_deflated_entry_claiming_more_than_deflate_can_produce(tree_file):
    entries = entries_of(tree_file)
    write_zip(tree_file, entries, compression=zipfile.ZIP_DEFLATED)
    assert load(tree_file).max_order == 3  # savez_compressed-style files are read
    info = zipfile.ZipFile(tree_file).getinfo("base.npy")
    patch_central_sizes(tree_file, "base.npy", file_size=2000 * info.compress_size)
    refused(tree_file, r"entry 'base' declares \d+ bytes from \d+ compressed, more than deflate can produce")


def test_entries_claiming_more_bytes_than_the_file_has(tree_file):
    """Overlapping or out-of-file entries (the non-recursive zip bomb's trick)."""
    entries = entries_of(tree_file)
    write_zip(tree_file, entries)
    size = tree_file.stat().st_size
    patch_central_sizes(tree_file, "U_1.npy", compress_size=size, file_size=size)
    refused(tree_file, rf"declares \d+ bytes of entries in a file of {size} bytes")


def test_stored_entry_shorter_than_its_zip_sizes_claim(tree_file):
    entries = entries_of(tree_file)
    write_zip(tree_file, entries)
    # Both sizes say 16 bytes more than stored: the read runs into the next entry and fails its CRC.
    n = len(entries["U_2.npy"])
    patch_central_sizes(tree_file, "U_2.npy", compress_size=n + 16, file_size=n + 16)
    refused(tree_file, r"entry 'U_2' holds \d+ bytes of data but|corrupted")


def test_huge_metadata_entry_is_refused_unread(tree_file):
    entries = entries_of(tree_file)
    entries[META] = npy_header((2**40,), "|u1") + b"{}"
    write_zip(tree_file, entries)
    peak = refused(tree_file, r"'__metadata__' declares 1099511627776 bytes, more than the 16777216")
    assert peak < 4 * MiB


# -- lying headers -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "header, match",
    [
        (
            npy_header((2**22, 2**22), "<f8"),
            r"array 'U_1' has shape \(4194304, 4194304\) but the metadata implies \(40, 3\)",
        ),
        (npy_header((40, 2), "<f8"), r"array 'U_1' has shape \(40, 2\) but the metadata implies \(40, 3\)"),
        (npy_header((40, 3), "<f4"), r"array 'U_1' has dtype float32 but the metadata implies float64"),
        (npy_header((40, 3), "<c16"), r"array 'U_1' has dtype complex128 but the metadata implies float64"),
        (npy_header((40, 3), "<f8", fortran=True), r"array 'U_1' is stored in Fortran order"),
        (npy_header((40, 3), "|O"), r"corrupted or unsafe entry 'U_1': dtype object"),
        (npy_header((40, 3), [("a", "<f4"), ("b", "<f4")]), r"corrupted or unsafe entry 'U_1': dtype"),
    ],
)
def test_lying_headers(tree_file, header, match):
    entries = entries_of(tree_file)
    entries["U_1.npy"] = header + bytes(960)  # 960 = 40 * 3 * 8: sizes are plausible
    write_zip(tree_file, entries)
    peak = refused(tree_file, match)
    assert peak < 4 * MiB  # no MemoryError, nothing of the declared size allocated


def test_big_endian_arrays_load_as_native(tree_file):
    """Files written on a big-endian machine store '>f8'; the values are what counts."""
    entries = entries_of(tree_file)
    meta = meta_of(entries)
    arrays = {n[:-4]: np.load(bytes_io.BytesIO(d)) for n, d in entries.items() if n != META}
    swapped = {k: a.astype(a.dtype.newbyteorder(">")) for k, a in arrays.items()}
    for k, a in swapped.items():
        entries[f"{k}.npy"] = npy(a)
    meta["arrays_sha256"] = arrays_digest(swapped)
    write_zip(tree_file, set_meta(entries, meta))
    tree = load(tree_file)
    assert tree.base.dtype == np.float64 and tree.base.dtype.isnative
    assert np.array_equal(tree.base, arrays["base"])


class _Sentinel:
    ran = False

    def __reduce__(self):
        return (_mark_unpickled, ())


def _mark_unpickled():
    _Sentinel.ran = True
    return 0


def test_a_pickle_is_never_run(tree_file):
    entries = entries_of(tree_file)
    payload = npy(np.array([_Sentinel()] * 120, dtype=object).reshape(40, 3))
    assert b"_mark_unpickled" in payload  # a real pickle, which np.load(allow_pickle=True) would run
    entries["U_1.npy"] = payload
    write_zip(tree_file, entries)
    refused(tree_file, r"corrupted or unsafe entry 'U_1': dtype object")
    assert not _Sentinel.ran


# -- members that are not what they should be --------------------------------------------
@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"hello, not an array",
        b"\x93NUMPY\x09\x00" + bytes(20),
        b"\x93NUMPY\x01\x00\xff\xff" + b"{" * 100,
        b"\x93NUMPY\x01\x00\x20\x00{'descr': 1, 'shape': 'x'}     \n",
    ],
)
def test_member_that_is_not_npy(tree_file, payload):
    entries = entries_of(tree_file)
    entries["V_2.npy"] = payload
    write_zip(tree_file, entries)
    refused(tree_file, r"corrupted entry 'V_2': not a valid \.npy array")


@pytest.mark.parametrize("name", ["notes.txt", "U_1", "dir/base.npy", ".npy"])
def test_member_with_a_foreign_name(tree_file, name):
    entries = entries_of(tree_file)
    entries[name] = b"raw bytes"
    write_zip(tree_file, entries)
    refused(tree_file, rf"unexpected entry '{name}': a lowrank-tree \.npz holds only \.npy arrays")


def test_extra_missing_and_duplicate_members(tree_file):
    original = entries_of(tree_file)
    entries = dict(original, **{"U_9.npy": npy(np.zeros((40, 1)))})
    write_zip(tree_file, entries)
    refused(tree_file, r"unexpected entry 'U_9' for a tree with K = 3")

    entries = dict(original)
    del entries["V_2.npy"]
    write_zip(tree_file, entries)
    refused(tree_file, r"missing array 'V_2' \(metadata describes tree with K = 3\)")

    entries = dict(original)
    del entries[META]
    write_zip(tree_file, entries)
    refused(tree_file, r"no '__metadata__' entry")

    write_zip(tree_file, original)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        with zipfile.ZipFile(tree_file, "a") as zf:
            zf.writestr("U_1.npy", npy(np.zeros((40, 3))))
    refused(tree_file, r"entry 'U_1' appears twice")


def test_unsupported_compression_and_encryption(tree_file):
    entries = entries_of(tree_file)
    write_zip(tree_file, entries, compression=zipfile.ZIP_BZIP2)
    refused(tree_file, r"uses zip compression method 12; only stored and deflated entries are read")
    write_zip(tree_file, entries)
    data = bytearray(tree_file.read_bytes())
    pos = data.find(b"PK\x01\x02")
    struct.pack_into("<H", data, pos + 8, struct.unpack_from("<H", data, pos + 8)[0] | 1)
    tree_file.write_bytes(bytes(data))
    refused(tree_file, r"is encrypted")


# -- damaged and foreign files -----------------------------------------------------------
def test_truncated_anywhere(tree_file):
    data = tree_file.read_bytes()
    for cut in sorted({0, 1, 4, 22, 100} | {len(data) * i // 16 for i in range(1, 16)} | {len(data) - 1}):
        tree_file.write_bytes(data[:cut])
        refused(tree_file, r"not a readable \.npz \(zip\) archive|corrupted")


@tmp_settings
@given(st.data())
def test_damaged_bytes_never_load_silently(tree_file, data):
    """Any change of bytes: either the very same tree loads, or a ValueError names the file."""
    original = tree_file.read_bytes()
    reference = load(tree_file)
    damaged = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(damaged) - 1))
        damaged[i] = data.draw(st.integers(0, 255).filter(lambda b, i=i: b != damaged[i]))
    tree_file.write_bytes(bytes(damaged))
    try:
        again = load(tree_file)
    except ValueError as exc:
        assert str(tree_file) in str(exc)
    else:  # bytes the format ignores (e.g. zip timestamps or comments) may change
        assert again.rtol == reference.rtol and np.array_equal(again.base, reference.base)
        for a, b in zip(again.corrections, reference.corrections, strict=True):
            assert np.array_equal(a.U, b.U) and np.array_equal(a.V, b.V)
    finally:
        tree_file.write_bytes(original)


@pytest.mark.parametrize(
    "content", [b"", b"hello\n", bytes(range(256)) * 4, npy(np.ones(3)), b"PK\x05\x06" + bytes(18)]
)
def test_not_a_zip(tmp_path, content):
    path = tmp_path / "foreign.npz"
    path.write_bytes(content)
    refused(path, r"foreign\.npz: (not a readable \.npz \(zip\) archive|no '__metadata__' entry)")


# -- paths: missing, directories, permissions ---------------------------------------------
def test_missing_file_names_the_path(tmp_path):
    for name in ("absent.npz", "absent"):
        with pytest.raises(FileNotFoundError, match=name) as info:
            load(tmp_path / name)
        assert info.value.filename == str(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="absent"):
        load(tmp_path / "no-such-dir" / "absent.npz")


def test_load_a_directory(tmp_path):
    with pytest.raises(IsADirectoryError) as info:
        load(tmp_path)
    assert info.value.filename == str(tmp_path)


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0,
    reason="chmod 000 does not stop root from reading; the monkeypatched tests below cover it",
)
def test_permission_denied_for_real(tree_file):
    tree_file.chmod(0)
    try:
        with pytest.raises(PermissionError, match="permission denied") as info:
            load(tree_file)
        assert info.value.filename == str(tree_file)
    finally:
        tree_file.chmod(0o644)


def test_permission_denied_on_load(tree_file, monkeypatch):
    real_open = builtins.open

    def deny(file, *args, **kwargs):
        if os.fspath(file) == str(tree_file):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", deny)
    with pytest.raises(PermissionError, match=r"permission denied: cannot read this file") as info:
        load(tree_file)
    assert info.value.filename == str(tree_file) and str(tree_file) in str(info.value)
    with pytest.raises(PermissionError, match="tree.npz"):
        load(tree_file.with_suffix(""))  # the .npz name tried on the user's behalf


@pytest.fixture
def small_tree():
    return LowRankSegmentTree(np.eye(3), [(np.ones((3, 1)), np.ones((3, 1)))])


def listing(directory):
    return sorted(p.name for p in directory.rglob("*"))


def test_save_to_bad_targets_names_them_and_writes_nothing(tmp_path, small_tree):
    (tmp_path / "somedir").mkdir()
    (tmp_path / "taken.npz").mkdir()
    (tmp_path / "afile").write_text("x")
    before = listing(tmp_path)
    cases = [
        ("", ValueError, r"path must name a file to save to, got ''"),
        (tmp_path / "somedir", IsADirectoryError, "somedir"),
        (str(tmp_path / "somedir") + os.sep, IsADirectoryError, "somedir"),
        (str(tmp_path / "newdir") + os.sep, ValueError, r"newdir/?' \(ends with a path separator\)"),
        (tmp_path / "taken", IsADirectoryError, r"taken\.npz"),
        (
            tmp_path / "missing" / "model.npz",
            FileNotFoundError,
            r"directory '.*missing' does not exist: '.*missing/model\.npz'",
        ),
        (tmp_path / "afile" / "model.npz", NotADirectoryError, r"'.*afile' is not a directory"),
    ]
    for target, exc_type, match in cases:
        for check in (lambda t: save(small_tree, t), check_writable):
            with pytest.raises(exc_type, match=match) as info:
                check(target)
            if isinstance(info.value, OSError):
                assert str(target).rstrip(os.sep) in info.value.filename
            assert listing(tmp_path) == before


def test_check_writable_returns_the_path_save_writes(tmp_path, small_tree):
    for name, written in (("a", "a.npz"), ("b.npz", "b.npz"), ("C.NPZ", "C.NPZ"), ("d.npy", "d.npy.npz")):
        target = check_writable(tmp_path / name)
        assert target == tmp_path / written and not target.exists()
        assert save(small_tree, str(tmp_path / name)) == target and target.exists()
        assert check_writable(tmp_path / name) == target  # an existing file may be replaced
    assert listing(tmp_path) == ["C.NPZ", "a.npz", "b.npz", "d.npy.npz"]


def test_save_errors_name_the_target_not_the_temporary_file(tmp_path, small_tree, monkeypatch):
    target = tmp_path / "model.npz"
    real_open = builtins.open

    def deny(file, *args, **kwargs):
        if str(file).endswith(".tmp"):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(builtins, "open", deny)
        with pytest.raises(PermissionError, match=r"cannot save: Permission denied") as info:
            save(small_tree, target)
    assert info.value.filename == str(target) and ".tmp" not in str(info.value)
    assert listing(tmp_path) == []

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(os, "replace", full)
        with pytest.raises(OSError, match="No space left on device") as info:
            save(small_tree, target)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert listing(tmp_path) == []  # the temporary file is removed


def test_save_fsyncs_the_data_before_the_rename(tmp_path, small_tree, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(
            (
                "fsync",
                os.path.isdir(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else None,
                os.fstat(fd).st_size,
            )
        )
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.fspath(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = save(small_tree, tmp_path / "model.npz")
    assert [e[0] for e in events[:2]] == ["fsync", "replace"]
    first = events[0]
    assert first[0] == "fsync" and first[2] == target.stat().st_size  # the complete file was synced
    assert events[1] == ("replace", str(target))
    if os.name == "posix":
        assert events[2][0] == "fsync" and events[2][1] in (True, None)  # then its directory
    assert load(target).max_order == 1


@pytest.mark.skipif(not os.path.exists("/dev/zero") or not hasattr(os, "mkfifo"), reason="needs /dev/zero and FIFOs")
def test_devices_and_pipes_are_refused_unread(tmp_path):
    """A zip reader would read /dev/zero until memory runs out, and open() of a FIFO blocks."""
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    for path in ("/dev/zero", "/dev/null", str(fifo)):
        with pytest.raises(ValueError, match="not a regular file, expected a .npz file") as info:
            load(path)
        assert path in str(info.value)
