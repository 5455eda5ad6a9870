"""The static tree (feedsvc/publish/static.py): every published document as a file at its URL path,
a `.gz` beside it, switched as a whole by one rename of the DIR symlink; unchanged files are the
previous version's, hard-linked; a folder feedsvc does not own is refused, never deleted.
(tests/test_static_nginx.py serves the tree with real nginx.)"""

from __future__ import annotations

import errno
import gzip
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import conftest
import pytest
from live import BIN, feed_env, free_port, running, wait_for

from feedsvc import cli
from feedsvc.config import ConfigError, load_config
from feedsvc.pipeline.builder import Builder
from feedsvc.publish import static
from feedsvc.publish.layout import read_manifest
from feedsvc.publish.static import lay_out, tree_files, versions_dir

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def write_seed(seeds: Path, i: int, body: str = "") -> Path:
    """Article i, one per ten days: with max_entries=2 and pages of 2, a few months of archive."""
    stamp = int((T0 + timedelta(days=10 * i)).timestamp() * 1000)
    return conftest.write_seed(seeds, f"{i:04}.txt", stamp, f"Article {i}", f"https://e.com/{i}", f"<p>{i}</p>{body}")


@pytest.fixture
def nine_articles(tmp_path: Path) -> Path:
    """tmp_path/seeds with articles 0-8 (write_seed): a few months of archive pages."""
    folder = tmp_path / "seeds"
    folder.mkdir()
    for i in range(9):
        write_seed(folder, i)
    return folder


@pytest.fixture
def www(tmp_path: Path) -> Path:
    return tmp_path / "www"


def builder(config, www: Path, **overrides: object) -> Builder:
    # Entries' pages are left out here (counted in test_articles.py).
    settings = {"article_pages": False, **overrides}
    return Builder(config(max_entries=2, archive_page_size=2, static_dir=str(www), **settings))


def tree(www: Path) -> dict[str, Path]:
    """Every file of the version DIR points at, by its path under DIR."""
    root = www.resolve()
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}


def test_every_published_document_is_a_file_at_its_url_path_with_its_gzip_beside_it(
    tmp_path: Path, nine_articles: Path, www: Path, config
) -> None:
    result = builder(config, www).build()
    assert result.ok and result.published
    manifest = read_manifest(tmp_path / "out")
    documents = manifest["documents"]
    archive = sorted(n for n in documents if n.startswith("archive/") and n.endswith(".xml"))
    assert len(archive) >= 3
    expected = ["feed.xml", "feed.rss", "feed.json", "index.html", "feed.xsl", *archive]
    # The browser pages (feed.xml.html, archive/<n>.xml.html) are negotiated by Accept: not files.
    assert set(documents) == set(expected) | {n + ".html" for n in ["feed.xml", "feed.rss", *archive]}
    files = tree(www)
    assert sorted(files) == sorted(expected + [n + ".gz" for n in expected])
    objects = tmp_path / "out" / "objects"
    for name in expected:
        assert files[name].read_bytes() == (objects / documents[name]["object"]).read_bytes()
        assert files[name + ".gz"].read_bytes() == (objects / documents[name]["gzip_object"]).read_bytes()
        assert gzip.decompress(files[name + ".gz"].read_bytes()) == files[name].read_bytes()
        assert files[name].stat().st_mode & 0o777 == 0o644
    # DIR is a relative symlink to a whole version beside it, named by generation and content.
    target = os.readlink(www)
    assert target == f"www.versions/{manifest['generation']}-" + target.rpartition("-")[2]
    version = target.split("/")[1]
    assert sorted(p.name for p in versions_dir(www).iterdir()) == [version, version + ".json"]


def test_a_republish_links_unchanged_files_keeps_the_previous_version_and_removes_older_ones(
    tmp_path: Path, nine_articles: Path, www: Path, config
) -> None:
    build = builder(config, www)
    assert build.build().published
    targets, inodes, bodies = [], [], []
    for n in range(3):
        targets.append(os.readlink(www))
        inodes.append({name: path.stat().st_ino for name, path in tree(www).items()})
        bodies.append({name: path.read_bytes() for name, path in tree(www).items()})
        write_seed(nine_articles, 8, body=f"<p>edit {n}</p>")  # the newest article: the feeds change
        assert build.build(changed=["0008.txt"]).published
    now = {name: path.stat() for name, path in tree(www).items()}
    # Only the current and the previous version are kept, and the previous one is whole.
    names = sorted(p.name for p in versions_dir(www).iterdir())
    current, previous = os.readlink(www).split("/")[1], targets[-1].split("/")[1]
    assert names == sorted([current, current + ".json", previous, previous + ".json"])
    previous_files = {p.relative_to(versions_dir(www) / previous).as_posix(): p.read_bytes()
                      for p in (versions_dir(www) / previous).rglob("*") if p.is_file()}
    assert previous_files == bodies[-1]
    # Unchanged files are the previous version's very files; changed ones are new files, newer.
    changed = {name for name in now if bodies[-1][name] != tree(www)[name].read_bytes()}
    assert changed == {"feed.xml", "feed.xml.gz", "feed.rss", "feed.rss.gz", "feed.json", "feed.json.gz"}
    for name, st in now.items():
        if name in changed:
            assert st.st_ino != inodes[-1][name]
            assert st.st_mtime >= (versions_dir(www) / previous / name).stat().st_mtime
        else:
            assert st.st_ino == inodes[-1][name] == inodes[0][name], name


def test_the_tree_is_always_the_manifests_as_documents_come_and_go(
    tmp_path: Path, nine_articles: Path, www: Path, config
) -> None:
    """Versions are recycled (the one before the previous is made into the next): whatever was
    published before, the tree holds exactly the current manifest's files, and no empty folder."""
    build = builder(config, www)
    steps = [
        lambda: write_seed(nine_articles, 8, body="<p>edit</p>"),
        lambda: (nine_articles / "0000.txt").unlink(),  # January's page loses an entry, then goes
        lambda: (nine_articles / "0001.txt").unlink(),
        lambda: write_seed(nine_articles, 20),
        lambda: write_seed(nine_articles, 3, body="<p>archived edit</p>"),
        lambda: write_seed(nine_articles, 0),  # back again
        lambda: [(nine_articles / f"{i:04}.txt").unlink() for i in range(2, 9)],  # no archive at all
        lambda: [write_seed(nine_articles, i) for i in range(9)],
    ]
    objects = tmp_path / "out" / "objects"
    names: set[str] = set()
    pages: list[int] = []
    for n, step in enumerate([lambda: None, *steps]):
        step()
        assert build.build().ok
        files = tree_files(read_manifest(tmp_path / "out")["documents"])
        assert {name: path.read_bytes() for name, path in tree(www).items()} == {
            name: (objects / obj).read_bytes() for name, obj in files.items()
        }, n
        assert all(any(d.iterdir()) for d in www.resolve().rglob("*") if d.is_dir())
        assert len([p for p in versions_dir(www).iterdir() if p.is_dir()]) == min(n + 1, 2)
        names |= set(files)
        pages.append(len([name for name in files if name.startswith("archive/")]))
    assert pages[-2] == 0 and pages[-1] == pages[0] > 0  # the archive folder went, and came back
    assert len([name for name in names if name.startswith("archive/")]) >= 6


def test_an_edited_archived_article_changes_its_page_only(tmp_path: Path, nine_articles: Path, www: Path,
                                                          config) -> None:
    build = builder(config, www)
    assert build.build().published
    before = {name: path.read_bytes() for name, path in tree(www).items()}
    write_seed(nine_articles, 0, body="<p>corrected</p>")
    assert build.build(changed=["0000.txt"]).published
    after = {name: path.read_bytes() for name, path in tree(www).items()}
    assert after.keys() == before.keys()
    changed = sorted(name for name in after if after[name] != before[name])
    assert len(changed) == 2 and changed[0].startswith("archive/") and changed[1] == changed[0] + ".gz"
    assert b"corrected" in after[changed[0]]


def test_an_unchanged_build_lays_out_the_published_state_once(tmp_path: Path, nine_articles: Path, www: Path,
                                                              config) -> None:
    """A static_dir set on an output folder published before: the tree follows the manifest."""
    assert Builder(config(max_entries=2, archive_page_size=2, article_pages=False)).build().published
    assert not www.exists()
    build = builder(config, www)
    result = build.build()
    assert result.ok and not result.published
    target = os.readlink(www)
    assert tree(www)["feed.xml"].read_bytes() == (tmp_path / "out" / "feed.xml").read_bytes()
    assert build.build().ok and builder(config, www).build().ok  # and again, in a new process
    assert os.readlink(www) == target
    assert lay_out(tmp_path / "out", www) is False  # already the manifest's tree


def test_a_plain_directory_is_refused_and_left_alone(tmp_path: Path, nine_articles: Path, www: Path, capsys) -> None:
    www.mkdir()
    (www / "mine.html").write_text("the user's own file")
    config = tmp_path / "empty.toml"
    config.write_text("")
    args = ["--config", str(config), "--seeds", str(nine_articles), "--out", str(tmp_path / "out"),
            "--static", str(www)]
    for command in ("build", "watch"):
        assert cli.main([command, *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [
            f"feedsvc {command}: static directory {www} is a directory, not the symlink feedsvc switches "
            "between versions; move it away (feedsvc never deletes it) or choose another static_dir"
        ]
    assert (www / "mine.html").read_text() == "the user's own file" and [p.name for p in www.iterdir()] == ["mine.html"]
    assert not (tmp_path / "out" / "manifest.json").exists() and not versions_dir(www).exists()


def test_a_symlink_feedsvc_did_not_make_is_refused(tmp_path: Path, nine_articles: Path, www: Path, config) -> None:
    elsewhere = tmp_path / "site"
    elsewhere.mkdir()
    www.symlink_to(elsewhere)
    result = builder(config, www).build()
    assert not result.ok
    advice = "not to a version in www.versions; move it away or choose another static_dir"
    assert result.error == f"static directory {www} is a symlink to {elsewhere}, {advice}"
    assert result.public_error == f"static directory (static_dir) is a symlink, {advice}"  # no absolute path
    assert os.readlink(www) == str(elsewhere) and list(elsewhere.iterdir()) == []


def test_a_failed_layout_fails_the_build_keeps_the_last_tree_and_is_retried(
    tmp_path: Path, nine_articles: Path, www: Path, config, monkeypatch
) -> None:
    build = builder(config, www)
    assert build.build().published
    target, feed = os.readlink(www), tree(www)["feed.xml"].read_bytes()
    real_symlink = os.symlink

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(static.os, "symlink", full)
    write_seed(nine_articles, 8, body="<p>new</p>")
    result = build.build(changed=["0008.txt"])
    assert result.published and not result.ok  # the feed is published; the tree could not follow
    assert result.error == f"static directory {www} cannot be laid out: No space left on device"
    assert result.public_error == "static directory (static_dir) cannot be laid out: No space left on device"
    assert os.readlink(www) == target and tree(www)["feed.xml"].read_bytes() == feed  # the last whole version
    monkeypatch.setattr(static.os, "symlink", real_symlink)
    result = build.build()  # the service's retry: nothing to publish, the tree catches up
    assert result.ok and not result.published
    assert tree(www)["feed.xml"].read_bytes() == (tmp_path / "out" / "feed.xml").read_bytes() != feed
    assert not [p for p in versions_dir(www).iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_on_another_file_system_objects_are_copied(tmp_path: Path, nine_articles: Path, www: Path, config,
                                                   monkeypatch) -> None:
    """os.link from the output folder fails with EXDEV: the files are copies, unchanged ones still linked."""
    real_link = os.link
    def cross_device(source: str, target: str, *, src_dir_fd: int, dst_dir_fd: int) -> None:
        if os.fstat(src_dir_fd).st_ino == (tmp_path / "out" / "objects").stat().st_ino:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        real_link(source, target, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)

    monkeypatch.setattr(static.os, "link", cross_device)
    build = builder(config, www)
    assert build.build().ok
    documents = read_manifest(tmp_path / "out")["documents"]
    files = tree(www)
    objects = tmp_path / "out" / "objects"
    assert files["feed.xml"].read_bytes() == (objects / documents["feed.xml"]["object"]).read_bytes()
    assert all(path.stat().st_nlink == 1 for path in files.values())
    inode = files["feed.xsl"].stat().st_ino
    write_seed(nine_articles, 8, body="<p>new</p>")
    assert build.build(changed=["0008.txt"]).ok
    assert tree(www)["feed.xsl"].stat().st_ino == inode  # from the previous version, same file system


def test_documents_are_laid_out_by_name_generically() -> None:
    """A document named a/b.xml is the file a/b.xml (the many-feeds folders need nothing more);
    a browser page is left out; a name that is not a relative path is refused."""
    docs = {
        "a/b.xml": {"object": "1", "gzip_object": "1.gz"},
        "a/b.xml.html": {"object": "2", "gzip_object": "2.gz"},
        "feeds.opml": {"object": "3", "gzip_object": "3.gz"},
        "index.html": {"object": "4", "gzip_object": "4.gz"},
    }
    assert tree_files(docs) == {
        "a/b.xml": "1", "a/b.xml.gz": "1.gz", "feeds.opml": "3", "feeds.opml.gz": "3.gz",
        "index.html": "4", "index.html.gz": "4.gz",
    }
    for bad in ("../x.xml", "/etc/x.xml", "a//b.xml", "a/./b.xml"):
        with pytest.raises(ValueError):
            tree_files({bad: {"object": "1", "gzip_object": "1.gz"}})


def test_static_dir_is_a_config_key_off_by_default(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert load_config(empty, env={}).static_path is None
    config = load_config(empty, env={"FEEDSVC_STATIC_DIR": "public"})
    assert config.static_path == Path("public")
    assert config.describe("static_dir") == "environment variable FEEDSVC_STATIC_DIR"
    assert load_config(empty, env={}, overrides={"static_dir": "/srv/www"}).static_path == Path("/srv/www")
    with pytest.raises(ConfigError, match=r"static_dir \(from option --static-dir\): must end in a folder name"):
        load_config(empty, env={}, overrides={"static_dir": "."})


@pytest.mark.live
def test_serve_honours_static_dir(tmp_path: Path, nine_articles: Path, www: Path) -> None:
    """`feedsvc serve` with FEEDSVC_STATIC_DIR: the tree follows every publish of its builder."""
    port = free_port()
    env = feed_env(tmp_path, nine_articles, tmp_path / "out", FEEDSVC_STATIC_DIR=str(www), FEEDSVC_MAX_ENTRIES="2",
                   FEEDSVC_ARCHIVE_PAGE_SIZE="2")
    with running([str(BIN / "feedsvc"), "serve", "--port", str(port)], env, port, tmp_path / "serve.log") as srv:
        wait_for(lambda: srv.get("/feed.xml")[0] == 200 and www.is_symlink(), what="the first publish")
        assert (www / "feed.xml").read_bytes() == srv.get("/feed.xml")[2]
        write_seed(nine_articles, 30)  # a new newest article
        wait_for(lambda: b"Article 30" in srv.get("/feed.xml")[2], what="the new article served")
        wait_for(lambda: (www / "feed.xml").read_bytes() == srv.get("/feed.xml")[2], what="the tree following")
        assert (www / "archive").is_dir()
        log = srv.log()
    assert "ERROR" not in log and "Traceback" not in log


def test_a_static_tree_with_a_loopback_base_url_is_warned_about_once(
    config, seeds: Path, www: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default base_url would send readers of a static tree's feeds to 127.0.0.1: one WARNING
    per process says so; a public base_url says nothing."""
    import logging

    from feedsvc.pipeline import builder as builder_module

    monkeypatch.setattr(builder_module, "_warned_loopback", set())
    caplog.set_level(logging.WARNING, logger="feedsvc")
    local = builder(config, www, base_url="http://127.0.0.1:8000/")
    assert local.build().ok
    write_seed(seeds, 99)
    assert local.build().ok
    assert builder(config, www, base_url="http://127.0.0.1:8000/").build().ok  # another builder, same process
    warned = [r.getMessage() for r in caplog.records if "base_url" in r.getMessage()]
    assert len(warned) == 1 and "127.0.0.1 links" in warned[0], warned
    caplog.clear()
    assert builder(config, tmp_path / "public", base_url="https://feeds.example.org/").build().ok
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
