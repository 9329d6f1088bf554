"""``acula_edge.hashing``: one file hash with one memo, and folder digests."""

import hashlib
import os

import acula_edge.hashing as hashing


def _count_reads(monkeypatch) -> list:
    hashed = []
    real = hashing._read_bytes
    monkeypatch.setattr(hashing, "_read_bytes", lambda p: hashed.append(p) or real(p))
    return hashed


def test_file_hashes_are_memoised(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(hashing, "_memo", {})
    hashed = _count_reads(monkeypatch)
    f = tmp_path / "w.bin"
    f.write_bytes(b"x" * 1000)
    d1 = hashing.sha256_file(f, persistent=True)
    assert d1 == hashlib.sha256(b"x" * 1000).hexdigest()
    assert len(hashed) == 1 and hashing.memo_path().is_file()
    assert hashing.sha256_file(f) == d1 and len(hashed) == 1  # this process's memo answers
    monkeypatch.setattr(hashing, "_memo", {})  # a new process: the JSON memo answers
    assert hashing.sha256_file(f, persistent=True) == d1 and len(hashed) == 1
    monkeypatch.setattr(hashing, "_memo", {})  # without persistence the file is read
    assert hashing.sha256_file(f) == d1 and len(hashed) == 2
    # a same-size change with a new mtime is hashed again
    f.write_bytes(b"y" * 1000)
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    d2 = hashing.sha256_file(f, persistent=True)
    assert d2 != d1 and len(hashed) == 3
    # a damaged memo or an unwritable location only costs hashing again
    monkeypatch.setattr(hashing, "_memo", {})
    hashing.memo_path().write_text("{not json")
    assert hashing.sha256_file(f, persistent=True) == d2 and len(hashed) == 4
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # the memo folder cannot be created
    monkeypatch.setattr(hashing, "_memo", {})
    assert hashing.sha256_file(f, persistent=True) == d2 and len(hashed) == 5


def test_folder_digest_covers_names_and_contents(tmp_path):
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("a")
    (d / "sub" / "b.txt").write_text("b")
    first = hashing.path_digest(d)
    assert first == hashing.path_digest(d) and len(first) == 64
    (d / "sub" / "b.txt").rename(d / "sub" / "c.txt")
    renamed = hashing.path_digest(d)
    assert renamed != first
    (d / "a.txt").write_text("A")
    assert hashing.path_digest(d) not in (first, renamed)
    assert hashing.path_digest(tmp_path / "absent") == "missing"
    assert hashing.path_digest(d / "a.txt") == hashlib.sha256(b"A").hexdigest()
