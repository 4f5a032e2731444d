"""Safe ZIP handling: each refused archive gets its own error, and nothing is left behind."""
import io
import shutil
import stat
import subprocess
import zipfile

import pytest
from PIL import Image

from biqe_lab import ZipLimits, extract_zip, ingest
from biqe_lab.errors import (ArchiveTooLargeError, ImageDecodeError, InputError, NoImagesError,
                             UnsafeArchiveError)


def _png_bytes(size=(40, 20)) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, 255).save(buf, format="PNG")
    return buf.getvalue()


def _zip(path, entries):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            if isinstance(name, zipfile.ZipInfo):
                z.writestr(name, data)
            else:
                z.writestr(name, data)
    return path


def test_good_zip_extracts_images_and_skips_junk(tmp_path):
    src = _zip(tmp_path / "ok.zip", [("scan/p1.png", _png_bytes()), ("scan/p2.png", _png_bytes()),
                                     ("__MACOSX/scan/._p1.png", b"junk"), ("scan/.DS_Store", b"junk"),
                                     ("notes.txt", b"hello")])
    doc = ingest(src, workdir=tmp_path / "work")
    assert [p.name for p in doc.pages] == ["p1", "p2"]
    assert not (tmp_path / "work" / "__MACOSX").exists()
    assert not (tmp_path / "work" / "notes.txt").exists()


@pytest.mark.skipif(shutil.which("zip") is None, reason="needs the zip program (apt: zip)")
def test_password_protected_zip_is_refused(tmp_path):
    (tmp_path / "p1.png").write_bytes(_png_bytes())
    subprocess.run(["zip", "-q", "-P", "secret", str(tmp_path / "enc.zip"), "p1.png"], cwd=tmp_path, check=True)
    with pytest.raises(UnsafeArchiveError, match="password-protected"):
        extract_zip(tmp_path / "enc.zip", tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("name,reason", [("/etc/p1.png", "absolute path"), ("../p1.png", "outside the archive"),
                                          ("a/../../p1.png", "outside the archive"), ("C:/p1.png", "absolute path")])
def test_path_escapes_are_refused(tmp_path, name, reason):
    src = _zip(tmp_path / "bad.zip", [("ok.png", _png_bytes()), (name, _png_bytes())])
    with pytest.raises(UnsafeArchiveError, match=reason):
        extract_zip(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_symlink_entries_are_refused(tmp_path):
    link = zipfile.ZipInfo("p1.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    src = _zip(tmp_path / "link.zip", [(link, "/etc/passwd")])
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        extract_zip(src, tmp_path / "out")


def test_high_compression_ratio_is_refused(tmp_path):
    src = _zip(tmp_path / "bomb.zip", [("p1.png", _png_bytes()), ("p2.tif", b"\0" * 20_000_000)])
    with pytest.raises(ArchiveTooLargeError, match="expands .*x; the limit is 200x"):
        extract_zip(src, tmp_path / "out")


def test_total_size_and_page_count_limits_are_configurable(tmp_path):
    src = _zip(tmp_path / "three.zip", [(f"p{i}.png", _png_bytes((400, 400))) for i in range(3)])
    with pytest.raises(ArchiveTooLargeError, match="more than 2 page images"):
        extract_zip(src, tmp_path / "a", ZipLimits(max_pages=2))
    with pytest.raises(ArchiveTooLargeError, match="expands to more than 100 bytes"):
        extract_zip(src, tmp_path / "b", ZipLimits(max_total_bytes=100))
    assert len(extract_zip(src, tmp_path / "c", ZipLimits(max_pages=3))) == 3


def test_lying_header_is_caught_while_streaming(tmp_path):
    src = tmp_path / "liar.zip"
    _zip(src, [("p1.png", _png_bytes())])
    data = bytearray(src.read_bytes())
    # Shrink the declared uncompressed size in the central directory (offset 24 of the entry).
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24: cd + 28] = (10).to_bytes(4, "little")
    src.write_bytes(bytes(data))
    with pytest.raises((ArchiveTooLargeError, InputError)):
        extract_zip(src, tmp_path / "out", ZipLimits(max_entry_ratio=1e9))
    assert not list((tmp_path / "out").glob("*.png"))


def test_zip_without_images(tmp_path):
    src = _zip(tmp_path / "empty.zip", [("readme.txt", b"nothing here")])
    with pytest.raises(NoImagesError, match="no page image"):
        ingest(src, workdir=tmp_path / "out")


def test_undecodable_image_names_the_file(tmp_path):
    src = _zip(tmp_path / "broken.zip", [("good.png", _png_bytes()), ("broken_page.jpg", b"\xff\xd8 not a jpeg")])
    with pytest.raises(ImageDecodeError, match="broken_page.jpg"):
        ingest(src, workdir=tmp_path / "out")


def test_not_a_zip(tmp_path):
    (tmp_path / "fake.zip").write_bytes(b"hello")
    with pytest.raises(InputError, match="not a readable ZIP"):
        extract_zip(tmp_path / "fake.zip", tmp_path / "out")


def test_multipage_tiff_becomes_one_page_per_frame(tmp_path):
    frames = [Image.new("L", (60, 30), v) for v in (255, 200, 150)]
    frames[0].save(tmp_path / "scan.tif", save_all=True, append_images=frames[1:])
    doc = ingest(tmp_path)
    assert [p.name for p in doc.pages] == ["scan_p0001", "scan_p0002", "scan_p0003"]
    assert [p.image.frame for p in doc.pages] == [0, 1, 2]


def test_pages_in_natural_order_and_only_from_this_archive(tmp_path):
    first = _zip(tmp_path / "a.zip", [("p10.png", _png_bytes()), ("p2.png", _png_bytes()), ("p1.png", _png_bytes())])
    assert [p.name for p in ingest(first, workdir=tmp_path / "w").pages] == ["p1", "p2", "p10"]
    second = _zip(tmp_path / "b.zip", [("other.png", _png_bytes())])
    assert [p.name for p in ingest(second, workdir=tmp_path / "w").pages] == ["other"]
