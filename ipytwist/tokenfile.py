"""The service's token, kept in its state directory so it outlives a restart.

When neither ``--token`` nor ``$IPYTWIST_TOKEN`` gives a token, the service reads
it from ``token`` in its state directory; on the first start it makes a random
one and writes it there.  A given token is never written to the file (it stays
where the operator keeps it) and leaves the file as it is.

The file is made whole and private before it has its name: the token is written
to a new temporary file (``O_CREAT | O_EXCL``, mode 0600 from the start) and
synced, then linked to its name (which fails if the name exists) and the
temporary name removed; a crash leaves no half-written token.  The file is read
only as ssh reads a private key: a token file that is a symbolic link or not a
regular file, not the user's, readable or writable by others, empty, or holding
anything but one token is refused with one line saying what to do, never
replaced (replacing would lock out every client quietly; a loose file may already
have been read by others and deserves a human's look).
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat

from .statedir import StateDirError

__all__ = ["TOKEN_NAME", "TokenFileError", "load_or_make_token"]

#: The token file in the state directory.
TOKEN_NAME = "token"
#: A token the service makes: 32 random bytes as hex.
TOKEN_BYTES = 32
#: A token file longer than this is refused unread.
MAX_FILE_BYTES = 1024
#: What a token in the file may be: one line of printable ASCII without spaces.
_TOKEN = re.compile(r"[!-~]{16,512}")


class TokenFileError(StateDirError):
    """The token file cannot be used: its message is one line for the operator."""


def load_or_make_token(state_dir: str) -> str:
    """The token in ``state_dir``'s token file, made there first if there is none.

    Raises :class:`TokenFileError` if the file is unsafe or malformed, or cannot be
    read or made.  The state directory exists and is held by the caller."""
    path = os.path.join(state_dir, TOKEN_NAME)
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    try:
        return _make(state_dir, path)
    except FileExistsError:  # made meanwhile (only another process could): read it
        return _read(path)
    except OSError as e:
        raise TokenFileError(f"the token file {path} cannot be made: {_why(e)}") from None


def _read(path: str) -> str:
    """The token in ``path``; FileNotFoundError if there is no file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise _refuse(path, "is a symbolic link") from None
        raise TokenFileError(f"the token file {path} cannot be read: {_why(e)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, "is not a regular file")
        if st.st_uid != os.getuid():
            raise _refuse(path, f"belongs to uid {st.st_uid}, not to you")
        if st.st_mode & 0o077:
            mode = stat.S_IMODE(st.st_mode)
            raise _refuse(
                path,
                f"is open to others (mode {mode:04o})",
                "chmod 600 it if no one else can have read it, else remove it",
            )
        data = os.read(fd, MAX_FILE_BYTES + 1)
    except OSError as e:
        raise TokenFileError(f"the token file {path} cannot be read: {_why(e)}") from None
    finally:
        os.close(fd)
    return _parse(path, data)


def _parse(path: str, data: bytes) -> str:
    if not data.strip():
        raise _refuse(path, "is empty")
    text = data.decode("ascii", "replace")
    if text.endswith("\n"):
        text = text[:-1]
    if len(data) > MAX_FILE_BYTES or not _TOKEN.fullmatch(text):
        raise _refuse(path, "does not hold one token (16 to 512 printable characters, no spaces)")
    return text


def _make(state_dir: str, path: str) -> str:
    """Write a new random token to ``path``; FileExistsError if it exists."""
    token = secrets.token_hex(TOKEN_BYTES)
    temp = os.path.join(state_dir, f".{TOKEN_NAME}-{secrets.token_hex(8)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    fd = os.open(temp, flags, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # (whatever the umask)
            data = (token + "\n").encode()
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(temp, path)
    finally:
        os.unlink(temp)
    return token


def _refuse(
    path: str, what: str, advice: str = "remove it to have a new token made"
) -> TokenFileError:
    return TokenFileError(f"the token file {path} {what}: {advice}")


def _why(e: OSError) -> str:
    return e.strerror or str(e)
