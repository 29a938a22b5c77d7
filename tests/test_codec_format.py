"""The compressed file format: round trips, header checks, framing errors and atomic writes."""

from __future__ import annotations

import json
import os
import struct
import zlib

import numpy as np
import pytest

from sparsecodec.codec import (
    ChecksumError,
    CompressedFileReader,
    CompressedFileWriter,
    FileHeader,
    FormatError,
    FormatVersionError,
    OutputExistsError,
    TruncatedFileError,
    read_records,
)
from sparsecodec.codec.format import MAGIC, MAX_ID_BYTES
from codec_helpers import SMALL_SHAPE, TPC_SHAPE, make_header, random_key_points, sorted_expected, write_sample_file


def read_all(path, **options):
    with CompressedFileReader(path) as reader:
        return list(reader.records(**options))


def rewrite_header(data: bytes, change) -> bytes:
    """Return ``data`` with its header JSON changed by ``change(dict)`` and the CRC32 fixed."""
    length = struct.unpack_from("<I", data, 10)[0]
    document = json.loads(data[14:14 + length])
    change(document)
    header = json.dumps(document).encode()
    prefix = data[:10] + struct.pack("<I", len(header)) + header
    return prefix + struct.pack("<I", zlib.crc32(prefix)) + data[14 + length + 4:]


def test_round_trip_coordinates_and_float16_values(tmp_path):
    path = tmp_path / "sample.scz"
    written = write_sample_file(path)
    records = read_all(path)
    assert len(records) == len(written)
    for (info, record), (wedge_id, signal, coords, values) in zip(records, written):
        expected_coords, expected_values = sorted_expected(coords, values)
        assert record.wedge_id == wedge_id == info.wedge_id
        assert record.signal_count == signal
        assert record.kept_count == len(coords) == info.kept_count
        np.testing.assert_array_equal(record.coords, expected_coords)
        assert record.values.dtype == np.float16
        np.testing.assert_array_equal(record.values.view(np.uint16), expected_values.view(np.uint16))


@pytest.mark.parametrize("coordinate_coding", ["auto", "bitpacked", "delta-zstd"])
@pytest.mark.parametrize("value_coding", ["auto", "raw", "zstd"])
def test_round_trip_every_coding(tmp_path, coordinate_coding, value_coding):
    path = tmp_path / "coded.scz"
    written = write_sample_file(path, counts=(0, 3, 500), shape=SMALL_SHAPE[:2] + (40,),
                                coordinate_coding=coordinate_coding, value_coding=value_coding)
    shape = SMALL_SHAPE[:2] + (40,)
    for (info, record), (_, _, coords, values) in zip(read_all(path), written):
        expected_coords, expected_values = sorted_expected(coords, values, shape)
        np.testing.assert_array_equal(record.coords, expected_coords)
        np.testing.assert_array_equal(record.values, expected_values)
        if coordinate_coding != "auto" and info.kept_count:
            assert info.coordinate_coding == coordinate_coding
        if value_coding != "auto" and info.kept_count:
            assert info.value_coding == value_coding


def test_auto_coding_picks_smaller_block(tmp_path):
    path = tmp_path / "auto.scz"
    write_sample_file(path, counts=(1, 3000))
    infos = list(CompressedFileReader(path).infos())
    assert (infos[0].coordinate_coding, infos[0].value_coding) == ("bitpacked", "raw")
    assert infos[1].coordinate_coding == "delta-zstd"
    assert infos[1].coordinate_bytes < 3000 * 20 / 8


def test_record_info_sizes_add_up(tmp_path):
    path = tmp_path / "sizes.scz"
    write_sample_file(path)
    with CompressedFileReader(path) as reader:
        infos = list(reader.infos())
        data_offset = reader.data_offset
    assert infos[0].offset == data_offset
    for before, after in zip(infos, infos[1:]):
        assert before.offset + before.record_bytes == after.offset
    assert infos[-1].offset + infos[-1].record_bytes + 20 == os.path.getsize(path)
    for info in infos:
        id_bytes = len(info.wedge_id.encode())
        assert info.record_bytes == 12 + 6 + id_bytes + 13 + info.coordinate_bytes + 5 + info.value_bytes


def test_header_round_trip(tmp_path):
    path = tmp_path / "header.scz"
    header = make_header(gate_mode="ratio", gate_value=40.0, gate_seed=7, metadata={"backend": "native"})
    with CompressedFileWriter(path, header):
        pass
    with CompressedFileReader(path) as reader:
        assert reader.header == header
        assert reader.version == 1
        assert list(reader.records()) == []
        assert reader.complete


def test_file_starts_with_magic_and_version(tmp_path):
    path = tmp_path / "magic.scz"
    write_sample_file(path, counts=(1,))
    data = path.read_bytes()
    assert data[:8] == MAGIC == b"\x89SCZ\r\n\x1a\n"
    assert struct.unpack_from("<H", data, 8) == (1,)
    assert data[-20:-4] == b"DONE" + struct.pack("<IQ", 8, 1)


def test_read_records_yields_decoded_records(tmp_path):
    path = tmp_path / "records.scz"
    written = write_sample_file(path, counts=(2, 4))
    assert [record.wedge_id for record in read_records(path)] == [entry[0] for entry in written]


def test_wrong_magic_raises(tmp_path):
    path = tmp_path / "plain.scz"
    path.write_bytes(b"PK\x03\x04 this is a zip file")
    with pytest.raises(FormatError, match="not a sparsecodec compressed file"):
        CompressedFileReader(path)


def test_empty_file_raises(tmp_path):
    path = tmp_path / "empty.scz"
    path.write_bytes(b"")
    with pytest.raises(FormatError, match="wrong magic"):
        CompressedFileReader(path)


def test_newer_version_rejected_with_message(tmp_path):
    path = tmp_path / "v2.scz"
    write_sample_file(path, counts=(1,))
    data = bytearray(path.read_bytes())
    data[8:10] = struct.pack("<H", 2)
    path.write_bytes(bytes(data))
    with pytest.raises(FormatVersionError, match=r"format version 2, newer than this sparsecodec reads \(1\)"):
        CompressedFileReader(path)


def test_version_zero_rejected(tmp_path):
    path = tmp_path / "v0.scz"
    write_sample_file(path, counts=(1,))
    data = bytearray(path.read_bytes())
    data[8:10] = b"\x00\x00"
    path.write_bytes(bytes(data))
    with pytest.raises(FormatVersionError, match="version 0, not one of the versions"):
        CompressedFileReader(path)


def test_header_checksum_mismatch(tmp_path):
    path = tmp_path / "header.scz"
    write_sample_file(path, counts=(1,))
    data = bytearray(path.read_bytes())
    data[20] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="header checksum mismatch"):
        CompressedFileReader(path)


def test_record_checksum_mismatch_names_record(tmp_path):
    path = tmp_path / "record.scz"
    write_sample_file(path, counts=(5, 50, 5))
    with CompressedFileReader(path) as reader:
        second = list(reader.infos())[1]
    data = bytearray(path.read_bytes())
    data[second.offset + second.record_bytes - 10] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=r"record 1 \(wedge id '0-1-1-1', unverified\) at byte \d+: checksum"):
        read_all(path)


@pytest.mark.parametrize("cut", ["record boundary", "inside record", "inside trailer"])
def test_truncated_file_raises(tmp_path, cut):
    path = tmp_path / "cut.scz"
    write_sample_file(path, counts=(5, 50))
    with CompressedFileReader(path) as reader:
        infos = list(reader.infos())
    data = path.read_bytes()
    end = {"record boundary": infos[1].offset + infos[1].record_bytes,
           "inside record": infos[1].offset + 20,
           "inside trailer": len(data) - 3}[cut]
    path.write_bytes(data[:end])
    with pytest.raises(TruncatedFileError, match="cut short"):
        read_all(path)


def test_cut_inside_header_raises(tmp_path):
    path = tmp_path / "cut.scz"
    write_sample_file(path, counts=(1,))
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(TruncatedFileError, match="inside the header"):
        CompressedFileReader(path)


def test_bytes_after_trailer_raise(tmp_path):
    path = tmp_path / "extra.scz"
    write_sample_file(path, counts=(1,))
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(FormatError, match="1 unexpected bytes after the end trailer"):
        read_all(path)


def test_trailer_count_mismatch_raises(tmp_path):
    path = tmp_path / "count.scz"
    write_sample_file(path, counts=(1, 2))
    data = bytearray(path.read_bytes())
    trailer = b"DONE" + struct.pack("<IQ", 8, 3)
    data[-20:] = trailer + struct.pack("<I", zlib.crc32(trailer))
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="end trailer counts 3 records, but 2 were read"):
        read_all(path)


def test_swapped_records_raise_index_error(tmp_path):
    path = tmp_path / "swap.scz"
    write_sample_file(path, counts=(1, 2))
    with CompressedFileReader(path) as reader:
        first, second = list(reader.infos())
    data = path.read_bytes()
    a = data[first.offset:first.offset + first.record_bytes]
    b = data[second.offset:second.offset + second.record_bytes]
    path.write_bytes(data[:first.offset] + b + a + data[second.offset + second.record_bytes:])
    with pytest.raises(FormatError, match="has index 1, expected 0"):
        read_all(path)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(axis_order=["azimuth", "time", "layer"]), "axis_order"),
    (lambda d: d.update(value_dtype="float32"), "value_dtype"),
    (lambda d: d.update(wedge_shape=[16, 192]), "wedge_shape"),
    (lambda d: d.update(wedge_shape=[16, 0, 249]), "wedge shape"),
    (lambda d: d["model"].update(sha256="xyz"), "sha256"),
    (lambda d: d["gate"].update(mode="sometimes"), "gate mode"),
    (lambda d: d.update(coordinate_coding="gzip"), "coordinate coding"),
    (lambda d: d.pop("model"), "'model'"),
])
def test_invalid_header_fields_raise(tmp_path, change, message):
    path = tmp_path / "fields.scz"
    write_sample_file(path, counts=(1,))
    path.write_bytes(rewrite_header(path.read_bytes(), change))
    with pytest.raises(FormatError, match=message):
        CompressedFileReader(path)


def test_unknown_header_keys_are_ignored(tmp_path):
    path = tmp_path / "extra-key.scz"
    write_sample_file(path, counts=(1,))
    path.write_bytes(rewrite_header(path.read_bytes(), lambda d: d.update(comment="added later")))
    assert len(read_all(path)) == 1


def test_existing_output_needs_force(tmp_path):
    path = tmp_path / "out.scz"
    path.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match="--force"):
        CompressedFileWriter(path, make_header())
    assert path.read_bytes() == b"keep me"
    with CompressedFileWriter(path, make_header(), force=True):
        pass
    assert path.read_bytes().startswith(MAGIC)


def test_output_file_mode_follows_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        write_sample_file(tmp_path / "mode.scz", counts=(1,))
    finally:
        os.umask(previous)
    assert (tmp_path / "mode.scz").stat().st_mode & 0o777 == 0o640


def test_failed_write_leaves_no_output(tmp_path):
    path = tmp_path / "out.scz"
    with pytest.raises(RuntimeError, match="stop"):
        with CompressedFileWriter(path, make_header()) as writer:
            writer.write("a", 1, *random_key_points(1))
            raise RuntimeError("stop")
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous_output(tmp_path):
    path = tmp_path / "out.scz"
    write_sample_file(path, counts=(1,))
    before = path.read_bytes()
    with pytest.raises(ValueError):
        with CompressedFileWriter(path, make_header(), force=True) as writer:
            writer.write("a", 0, *random_key_points(1))  # signal count below kept count
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.scz"]


def test_unwritable_directory_raises_oserror(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError):
        CompressedFileWriter(blocker / "out.scz", make_header())


def test_output_is_directory_raises(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        CompressedFileWriter(tmp_path, make_header(), force=True)


def test_write_after_close_raises(tmp_path):
    writer = CompressedFileWriter(tmp_path / "out.scz", make_header())
    writer.close()
    with pytest.raises(ValueError, match="closed"):
        writer.write("a", 1, *random_key_points(1))


@pytest.mark.parametrize("wedge_id, signal, coords, values, error, message", [
    ("w", 2, np.array([[0, 0, 0], [0, 0, 0]]), np.array([0.1, 0.2]), ValueError, "duplicate"),
    ("w", 1, np.array([[16, 0, 0]]), np.array([0.1]), ValueError, "layer coordinates span 16..16"),
    ("w", 1, np.array([[0, -1, 0]]), np.array([0.1]), ValueError, "azimuth coordinates span -1..-1"),
    ("w", 1, np.array([[0, 0, 249]]), np.array([0.1]), ValueError, "time coordinates span"),
    ("w", 1, np.array([[0, 0]]), np.array([0.1]), ValueError, r"shape \(K, 3\)"),
    ("w", 1, np.array([[0.0, 0.0, 0.0]]), np.array([0.1]), TypeError, "coords must be integers"),
    ("w", 1, np.array([[0, 0, 0]]), np.array([1, 2]), ValueError, r"values must have shape \(1,\)"),
    ("w", 1, np.array([[0, 0, 0]]), np.array([1]), TypeError, "floating point"),
    ("w", 1, np.array([[0, 0, 0]]), np.array([np.nan]), ValueError, "finite"),
    ("w", 1, np.array([[0, 0, 0]]), np.array([1e6]), ValueError, "finite in float16"),
    ("w", 0, np.array([[0, 0, 0]]), np.array([0.5]), ValueError, "signal count 0"),
    ("w", 10**7, np.array([[0, 0, 0]]), np.array([0.5]), ValueError, "wedge volume"),
    ("w", 1.0, np.array([[0, 0, 0]]), np.array([0.5]), TypeError, "signal_count must be an int"),
    ("", 1, np.array([[0, 0, 0]]), np.array([0.5]), ValueError, "wedge id must be 1..1024"),
    ("x" * (MAX_ID_BYTES + 1), 1, np.array([[0, 0, 0]]), np.array([0.5]), ValueError, "wedge id must be"),
    (7, 1, np.array([[0, 0, 0]]), np.array([0.5]), TypeError, "wedge id must be a str"),
])
def test_writer_rejects_bad_key_points(tmp_path, wedge_id, signal, coords, values, error, message):
    with CompressedFileWriter(tmp_path / "bad.scz", make_header()) as writer:
        with pytest.raises(error, match=message):
            writer.write(wedge_id, signal, coords, values)


def test_writer_accepts_torch_tensors(tmp_path):
    import torch

    path = tmp_path / "torch.scz"
    coords, values = random_key_points(30)
    with CompressedFileWriter(path, make_header()) as writer:
        writer.write("t", 30, torch.from_numpy(coords), torch.from_numpy(values))
    (_, record), = read_all(path)
    np.testing.assert_array_equal(record.values, sorted_expected(coords, values)[1])


@pytest.mark.parametrize("field, value, message", [
    ("model_name", "", "model name"),
    ("model_sha256", "AB" * 32, "lowercase hex"),
    ("gate_mode", "never", "gate mode"),
    ("gate_value", float("nan"), "finite number"),
    ("gate_seed", -1, "gate seed"),
    ("wedge_shape", (16, 192, 70000), "1..65535"),
    ("value_coding", "lz4", "value coding"),
    ("metadata", [], "JSON object"),
])
def test_header_rejects_invalid_fields(field, value, message):
    with pytest.raises(ValueError, match=message):
        make_header(**{field: value})


def test_header_volume_and_limits():
    header = make_header(TPC_SHAPE)
    assert header.volume == 16 * 192 * 249
    assert header.max_record_payload() > 5 * header.volume


def test_unicode_wedge_id_round_trips(tmp_path):
    path = tmp_path / "unicode.scz"
    with CompressedFileWriter(path, make_header()) as writer:
        writer.write("événement-7/secteur", 1, *random_key_points(1))
    assert [info.wedge_id for info in CompressedFileReader(path).infos()] == ["événement-7/secteur"]


def test_header_from_json_rejects_non_object():
    with pytest.raises(FormatError, match="not an object"):
        FileHeader.from_json(b"[1, 2]")
    with pytest.raises(FormatError, match="not valid UTF-8 JSON"):
        FileHeader.from_json(b"\xff{")
