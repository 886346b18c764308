# test_files.py: the std::fs calls, upload and download, blocking and on
# a GLib.MainLoop, with their GLib.GError domains and codes.
#
# SPDX-License-Identifier: MIT

import os

import gi

gi.require_version("Qlean", "1.0")
gi.require_version("Gio", "2.0")
from gi.repository import GLib, Gio, Qlean  # noqa: E402

import pytest  # noqa: E402

from conftest import (TRANSPORTS, finish, kill_if_running, require_machines,  # noqa: E402
                      run_main_loop, transport_config)


@pytest.fixture(scope="module", params=TRANSPORTS)
def machine(request):
    """Every test once per transport (conftest.transport_config)."""
    require_machines()
    config, expected = transport_config(request.param)
    m = Qlean.Machine.new_with_name(f"py-files-{request.param}", None, config)
    m.spawn(None)
    assert m.get_guest_transport() == expected
    yield m
    kill_if_running(m)


def io_error(raised, code):
    """Whether the GLib.GError in pytest's raised is G_IO_ERROR code."""
    return raised.value.matches(Gio.io_error_quark(), code)


@pytest.fixture
def scratch(machine):
    """A fresh guest directory for one test, removed afterwards."""
    path = "/tmp/qlean-py-files"
    if machine.exists(path, None):
        machine.remove_dir_all(path, None)
    assert machine.create_dir_all(path, None)
    yield path
    if machine.get_state() == Qlean.MachineState.RUNNING:
        machine.remove_dir_all(path, None)


def test_write_read(machine, scratch):
    path = f"{scratch}/hello.txt"
    assert machine.write(path, GLib.Bytes.new(b"hello\x00world\n"), None)
    assert machine.read(path, None).get_data() == b"hello\x00world\n"
    assert machine.write(path, GLib.Bytes.new("grüße\n".encode()), None)
    assert machine.read_to_string(path, None) == "grüße\n"
    assert machine.exists(path, None)
    assert not machine.exists(f"{scratch}/nothing", None)


def test_dirs_and_metadata(machine, scratch):
    assert machine.create_dir_all(f"{scratch}/a/b/c", None)
    assert machine.create_dir(f"{scratch}/a/d", None)
    assert machine.write(f"{scratch}/a/file", GLib.Bytes.new(b"12345"), None)

    names = sorted(info.get_name() for info in machine.read_dir(f"{scratch}/a", None))
    assert names == ["b", "d", "file"]

    info = machine.metadata(f"{scratch}/a/file", None)
    assert info.get_file_type() == Gio.FileType.REGULAR
    assert info.get_size() == 5
    assert machine.metadata(f"{scratch}/a/b", None).get_file_type() == Gio.FileType.DIRECTORY

    assert machine.set_permissions(f"{scratch}/a/file", 0o640, None)
    info = machine.metadata(f"{scratch}/a/file", None)
    assert info.get_attribute_uint32("unix::mode") & 0o7777 == 0o640

    assert machine.remove_dir_all(f"{scratch}/a", None)
    assert not machine.exists(f"{scratch}/a", None)


def test_rename_copy_links(machine, scratch):
    assert machine.write(f"{scratch}/one", GLib.Bytes.new(b"data"), None)
    assert machine.rename(f"{scratch}/one", f"{scratch}/two", None)
    assert not machine.exists(f"{scratch}/one", None)
    assert machine.copy(f"{scratch}/two", f"{scratch}/three", None) == 4
    assert machine.read(f"{scratch}/three", None).get_data() == b"data"

    assert machine.hard_link(f"{scratch}/two", f"{scratch}/hard", None)
    assert machine.metadata(f"{scratch}/two", None).get_attribute_uint32("unix::nlink") == 2
    assert machine.symlink("two", f"{scratch}/soft", None)
    assert machine.read_link(f"{scratch}/soft", None) == "two"
    assert (machine.symlink_metadata(f"{scratch}/soft", None).get_file_type()
            == Gio.FileType.SYMBOLIC_LINK)

    assert machine.remove_file(f"{scratch}/three", None)
    assert not machine.exists(f"{scratch}/three", None)


def test_fs_errors(machine, scratch):
    missing = f"{scratch}/no-such-file"
    with pytest.raises(GLib.Error) as raised:
        machine.read(missing, None)
    assert io_error(raised, Gio.IOErrorEnum.NOT_FOUND)
    assert raised.value.domain == GLib.quark_to_string(Gio.io_error_quark())
    assert missing in raised.value.message

    with pytest.raises(GLib.Error) as raised:
        machine.read_to_string(missing, None)
    assert io_error(raised, Gio.IOErrorEnum.NOT_FOUND)

    with pytest.raises(GLib.Error) as raised:
        machine.remove_file(scratch, None)
    assert io_error(raised, Gio.IOErrorEnum.IS_DIRECTORY)
    assert scratch in raised.value.message

    with pytest.raises(GLib.Error) as raised:
        machine.create_dir(scratch, None)
    assert io_error(raised, Gio.IOErrorEnum.EXISTS)

    assert machine.write(f"{scratch}/file", GLib.Bytes.new(b"x"), None)
    with pytest.raises(GLib.Error) as raised:
        machine.read_dir(f"{scratch}/file", None)
    assert io_error(raised, Gio.IOErrorEnum.NOT_DIRECTORY)

    assert machine.create_dir_all(f"{scratch}/full/inner", None)
    with pytest.raises(GLib.Error) as raised:
        machine.remove_dir(f"{scratch}/full", None)
    assert io_error(raised, Gio.IOErrorEnum.NOT_EMPTY)
    assert machine.remove_dir(f"{scratch}/full/inner", None)
    assert machine.remove_dir(f"{scratch}/full", None)


def make_tree(root):
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "top.txt").write_bytes(b"top\n")
    (root / "sub" / "mid.bin").write_bytes(bytes(range(256)) * 8)
    (root / "sub" / "deeper" / "leaf.sh").write_text("#!/bin/sh\necho leaf\n")
    os.chmod(root / "sub" / "deeper" / "leaf.sh", 0o755)


def tree_contents(root):
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_upload_download_file(machine, scratch, tmp_path):
    local = tmp_path / "payload.bin"
    local.write_bytes(os.urandom(70000))
    assert machine.upload(Gio.File.new_for_path(str(local)), f"{scratch}/payload.bin", None)
    assert machine.read(f"{scratch}/payload.bin", None).get_data() == local.read_bytes()

    back = tmp_path / "back.bin"
    assert machine.download(f"{scratch}/payload.bin", Gio.File.new_for_path(str(back)), None)
    assert back.read_bytes() == local.read_bytes()


def test_upload_download_tree(machine, scratch, tmp_path):
    tree = tmp_path / "tree"
    make_tree(tree)
    assert machine.upload(Gio.File.new_for_path(str(tree)), f"{scratch}/tree", None)
    assert machine.read_to_string(f"{scratch}/tree/sub/deeper/leaf.sh", None) == "#!/bin/sh\necho leaf\n"
    result = machine.exec(f"{scratch}/tree/sub/deeper/leaf.sh", None)
    assert result.get_stdout_text() == "leaf\n"

    back = tmp_path / "back"
    assert machine.download(f"{scratch}/tree", Gio.File.new_for_path(str(back)), None)
    assert tree_contents(back) == tree_contents(tree)
    assert os.stat(back / "sub" / "deeper" / "leaf.sh").st_mode & 0o777 == 0o755


def test_transfer_errors(machine, scratch, tmp_path):
    with pytest.raises(GLib.Error) as raised:
        machine.download(f"{scratch}/absent", Gio.File.new_for_path(str(tmp_path / "x")), None)
    assert io_error(raised, Gio.IOErrorEnum.NOT_FOUND)
    assert not (tmp_path / "x").exists()

    with pytest.raises(GLib.Error) as raised:
        machine.upload(Gio.File.new_for_path(str(tmp_path / "absent")), f"{scratch}/y", None)
    assert io_error(raised, Gio.IOErrorEnum.NOT_FOUND)
    assert not machine.exists(f"{scratch}/y", None)


def test_fs_async(machine, scratch):
    path = f"{scratch}/async.txt"
    assert run_main_loop(lambda done: machine.write_async(
        path, GLib.Bytes.new(b"on the loop\n"), None, finish(done, machine.write_finish)))
    data = run_main_loop(lambda done: machine.read_async(
        path, None, finish(done, machine.read_finish)))
    assert data.get_data() == b"on the loop\n"
    entries = run_main_loop(lambda done: machine.read_dir_async(
        scratch, None, finish(done, machine.read_dir_finish)))
    assert [info.get_name() for info in entries] == ["async.txt"]

    with pytest.raises(GLib.Error) as raised:
        run_main_loop(lambda done: machine.read_async(
            f"{scratch}/missing", None, finish(done, machine.read_finish)))
    assert io_error(raised, Gio.IOErrorEnum.NOT_FOUND)
    assert f"{scratch}/missing" in raised.value.message


def test_transfer_async(machine, scratch, tmp_path):
    tree = tmp_path / "tree"
    make_tree(tree)
    assert run_main_loop(lambda done: machine.upload_async(
        Gio.File.new_for_path(str(tree)), f"{scratch}/tree", None,
        finish(done, machine.upload_finish)))
    assert machine.exists(f"{scratch}/tree/sub/mid.bin", None)

    back = tmp_path / "back"
    assert run_main_loop(lambda done: machine.download_async(
        f"{scratch}/tree", Gio.File.new_for_path(str(back)), None,
        finish(done, machine.download_finish)))
    assert tree_contents(back) == tree_contents(tree)
