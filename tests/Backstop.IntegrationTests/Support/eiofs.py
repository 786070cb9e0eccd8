#!/usr/bin/python3
"""The tests' own FUSE file system: BACKING passed through at MOUNTPOINT, except that I/O fails with EIO as a dying
disk's does. Which I/O fails is read from BACKING/.eio at each call, one rule per line, so a test switches faults on and
off while the file system stays mounted:

    read NAME     every read of a file whose name contains NAME fails
    write NAME    every write to a file whose name contains NAME fails
    write *       every write fails
    fsync *       every fsync fails

Usage: eiofs.py BACKING MOUNTPOINT   (stays in the foreground; unmount with umount MOUNTPOINT)
"""
import errno
import os
import sys

from fusepy import FUSE, FuseOSError, Operations


class EioFs(Operations):
    def __init__(self, backing):
        self.backing = os.path.realpath(backing)

    def _full(self, path):
        return os.path.join(self.backing, path.lstrip('/'))

    def _fails(self, op, path):
        try:
            with open(os.path.join(self.backing, '.eio')) as rules:
                for line in rules:
                    parts = line.split(None, 1)
                    if len(parts) == 2 and parts[0] == op and (parts[1].strip() == '*' or parts[1].strip() in os.path.basename(path)):
                        return True
        except FileNotFoundError:
            pass
        return False

    def getattr(self, path, fh=None):
        st = os.lstat(self._full(path))
        return {k: getattr(st, k) for k in ('st_atime', 'st_ctime', 'st_gid', 'st_mode', 'st_mtime', 'st_nlink', 'st_size', 'st_uid')}

    def readdir(self, path, fh):
        return ['.', '..'] + [n for n in os.listdir(self._full(path)) if n != '.eio']

    def access(self, path, mode):
        if not os.access(self._full(path), mode):
            raise FuseOSError(errno.EACCES)

    def chmod(self, path, mode):
        os.chmod(self._full(path), mode)

    def chown(self, path, uid, gid):
        os.chown(self._full(path), uid, gid)

    def mkdir(self, path, mode):
        os.mkdir(self._full(path), mode)

    def rmdir(self, path):
        os.rmdir(self._full(path))

    def unlink(self, path):
        os.unlink(self._full(path))

    def rename(self, old, new):
        os.rename(self._full(old), self._full(new))

    def utimens(self, path, times=None):
        os.utime(self._full(path), times)

    def statfs(self, path):
        st = os.statvfs(self._full(path))
        return {k: getattr(st, k) for k in ('f_bavail', 'f_bfree', 'f_blocks', 'f_bsize', 'f_favail', 'f_ffree', 'f_files', 'f_flag', 'f_frsize', 'f_namemax')}

    def open(self, path, flags):
        return os.open(self._full(path), flags)

    def create(self, path, mode, fi=None):
        return os.open(self._full(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

    def read(self, path, size, offset, fh):
        if self._fails('read', path):
            raise FuseOSError(errno.EIO)
        os.lseek(fh, offset, os.SEEK_SET)
        return os.read(fh, size)

    def write(self, path, data, offset, fh):
        if self._fails('write', path):
            raise FuseOSError(errno.EIO)
        os.lseek(fh, offset, os.SEEK_SET)
        return os.write(fh, data)

    def truncate(self, path, length, fh=None):
        with open(self._full(path), 'r+') as f:
            f.truncate(length)

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        return os.close(fh)

    def fsync(self, path, fdatasync, fh):
        if self._fails('fsync', path):
            raise FuseOSError(errno.EIO)
        return os.fsync(fh)


if __name__ == '__main__':
    FUSE(EioFs(sys.argv[1]), sys.argv[2], foreground=True, nothreads=True, allow_other=True, direct_io=True)
