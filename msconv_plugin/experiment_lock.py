"""One run at a time per experiment folder: ``experiments/<name>`` (training) or ``results/<name>`` (testing).

BasicSR lets two runs of the same ``name`` write into one folder (the second renames the first's folder away,
then both save ``net_g_*.pth`` there). The lock is a file next to the folder, ``<folder>.lock`` (beside it, not in
it: BasicSR renames an existing folder to ``<folder>_archived_<time>`` when a run starts afresh). It is created
with ``O_CREAT | O_EXCL``, so exactly one run gets it, and holds JSON: the owner's ``pid``, ``host``, the boot id
and the process's start time (``/proc/<pid>/stat``, field 22, in clock ticks since boot).

A lock is stale, and taken over with a note, when its owner ran on this host and is gone: the boot id changed
(a reboot), no process has that pid, or the process with that pid started at another time (the pid was reused).
A lock of another host cannot be checked from here: the run refuses, naming the host and the file to delete once
no run is active there.
"""
import json
import os
import os.path as osp
import socket

from msconv_plugin.cli import UserError


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _boot_id():
    return (_read('/proc/sys/kernel/random/boot_id') or '').strip() or None


def process_start_time(pid):
    """The start time of process ``pid`` (clock ticks since boot, Linux), or None where it cannot be read."""
    stat = _read(f'/proc/{pid}/stat')
    if stat is None:
        return None
    return int(stat.rsplit(')', 1)[1].split()[19])  # after 'pid (comm)': field 3 is state, field 22 starttime


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def this_process():
    """The owner record of the current process."""
    pid = os.getpid()
    return dict(pid=pid, host=socket.gethostname(), boot_id=_boot_id(), start_time=process_start_time(pid))


def is_stale(owner):
    """Whether the process an owner record describes has certainly ended (see the module docstring)."""
    if owner is None:
        return True  # unreadable or half-written: its writer died before finishing it
    if owner.get('host') != socket.gethostname():
        return False
    if owner.get('boot_id') and _boot_id() and owner['boot_id'] != _boot_id():
        return True
    pid = owner.get('pid')
    if not isinstance(pid, int) or not _alive(pid):
        return True
    started = process_start_time(pid)
    return owner.get('start_time') is not None and started is not None and started != owner['start_time']


class ExperimentLock:
    """The lock of one experiment (or results) folder.

    Args:
        folder (str): The folder the run writes to (``opt['path']['experiments_root']`` or ``results_root``).
        name (str): The experiment's ``name``, for messages.
    """

    def __init__(self, folder, name):
        self.folder = osp.normpath(folder)
        self.path = self.folder + '.lock'
        self.name = name
        self.owner = None

    def _owner_in_file(self):
        try:
            return json.loads(_read(self.path) or 'null')
        except ValueError:
            return None

    def _create(self):
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, 'w') as f:
            json.dump(self.owner, f)

    def acquire(self):
        """Take the lock, or raise ``UserError`` when another run holds it; take over a stale lock with a note.

        Returns:
            ExperimentLock: self.
        """
        os.makedirs(osp.dirname(self.path) or '.', exist_ok=True)
        self.owner = this_process()
        try:
            self._create()
            return self
        except FileExistsError:
            pass
        holder = self._owner_in_file()
        if not is_stale(holder):
            where = 'this machine' if holder['host'] == self.owner['host'] else f'host {holder["host"]}'
            raise UserError(
                f'Another run (pid {holder["pid"]} on {where}) is writing to {self.folder} of experiment '
                f'{self.name!r}. Wait for it to finish, or give this run another name (name: in the option file). '
                f'If no such run is active, delete {self.path}.')
        print(f'Taking over {self.path}, left by a run that has ended ({holder}).', flush=True)
        try:
            if self._owner_in_file() == holder:  # not already taken over by another run
                os.remove(self.path)
            self._create()
        except (FileExistsError, FileNotFoundError):  # another run took it over first
            raise UserError(f'Another run took over {self.path} of experiment {self.name!r} just now: give this '
                            'run another name.') from None
        return self

    def release(self):
        """Remove the lock if this process holds it."""
        if self.owner is not None and self._owner_in_file() == self.owner:
            os.remove(self.path)
        self.owner = None
