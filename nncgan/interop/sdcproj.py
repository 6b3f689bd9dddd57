"""Reading NNC project files (.sdcproj): INI-like sections of `Key=Value` lines.

`[Global]` lists the networks; `[<Net>_Layer_<i>]` holds a layer's Type and its
Property_<k>_Name / Property_<k>_Value pairs; `[<Net>_Link_<j>]` connects an output pin of
one layer (by ID) to an input pin of another; `[Config]`, `[Optimizer_<i>]`,
`[Executor_<i>]`, `[Dataset_<i>]` hold the training setup. Every value keeps its line, so
an error names the file, the line and the section.
"""
import math
import os
import stat
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

from ..errors import NncganError

MAX_BYTES = 16 << 20  # NNC's largest sample projects are well under 1 MiB


class ImportError_(NncganError):
    """A file to import is not what it claims to be; the message names file, line and section."""


@dataclass
class Section:
    name: str
    line: int
    values: Dict[str, Tuple[str, int]] = field(default_factory=dict)   # key -> (value, line)

    def get(self, key, default=None):
        return self.values[key][0] if key in self.values else default


@dataclass
class NncLayer:
    id: str
    type: str
    props: Dict[str, str]            # Property name -> value, in NNC's spelling
    section: str
    line: int


@dataclass
class NncNetwork:
    name: str
    layers: List[NncLayer]
    links: List[Tuple[str, int, str, int, int]]   # (source ID, source pin, dest ID, dest pin, link order)


class Project:
    """The sections of one .sdcproj file."""

    def __init__(self, path, text):
        self.path = str(path)
        self.sections: Dict[str, Section] = {}
        current = None
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith((";", "#")):
                continue
            if line.startswith("["):
                if not line.endswith("]") or len(line) < 3:
                    self.fail(n, None, f"a section header like [Global], got {line[:60]!r}")
                name = line[1:-1]
                if name in self.sections:
                    self.fail(n, name, f"each section once; [{name}] is also at line {self.sections[name].line}")
                current = self.sections[name] = Section(name, n)
                continue
            if current is None:
                self.fail(n, None, "a [section] header before the first Key=Value line")
            if "=" not in line:
                self.fail(n, current.name, f"a Key=Value line, got {line[:60]!r}")
            key, value = raw.split("=", 1)
            current.values[key.strip()] = (value.strip(), n)

    def fail(self, line, section, expected):
        where = f"{self.path}:{line}:" + (f" [{section}]" if section else "")
        raise ImportError_(f"{where} expected {expected}")

    def section(self, name, at=None):
        s = self.sections.get(name)
        if s is None:
            where = at if at is not None else 1
            self.fail(where, None, f"a [{name}] section (an NNC project lists its networks in [Global] "
                                   f"and its layers in [<Network>_Layer_<i>])")
        return s

    def value(self, section, key, kind=str, default=None):
        """The text of `key` in `section`, read as `kind` (str, int or float: a finite number);
        `default` (a value of `kind`) when the line is absent, else absence is an error."""
        s = self.section(section) if isinstance(section, str) else section
        if key not in s.values:
            if default is not None:
                return default
            self.fail(s.line, s.name, f"a {key}= line in this section")
        text, line = s.values[key]
        if kind is int:
            try:
                return int(text)
            except ValueError:  # not an integer, or 4,300 digits and more
                self.fail(line, s.name, f"{key} to be an integer, got {text[:40]!r}")
        if kind is float:
            try:
                v = float(text)
            except ValueError:
                v = math.nan
            if not math.isfinite(v):
                self.fail(line, s.name, f"{key} to be a finite number, got {text[:40]!r}")
            return v
        return text

    def numbered(self, prefix, count_section, count_key):
        """Sections <prefix>_0 .. <prefix>_<n-1>, n read from [count_section] count_key (0 if absent)."""
        s = self.sections.get(count_section)
        if s is None or count_key not in s.values:
            return []
        n = self.value(s, count_key, int)
        return [self.section(f"{prefix}_{i}", s.values[count_key][1]) for i in range(n)]

    def networks(self):
        names = [self.value("Global", f"Network_{i}") for i in range(self.value("Global", "NumNetwork", int))]
        out = []
        for net in names:
            glob = self.section(f"{net}_Network_Global", self.section("Global").line)
            layers = []
            for s in self.numbered(f"{net}_Layer", glob.name, "NumLayer"):
                props = {}
                for k in range(self.value(s, "NumProperty", int) if "NumProperty" in s.values else 0):
                    props[self.value(s, f"Property_{k}_Name")] = self.value(s, f"Property_{k}_Value")
                layers.append(NncLayer(self.value(s, "ID"), self.value(s, "Type"), props, s.name, s.line))
            links = []
            for j, s in enumerate(self.numbered(f"{net}_Link", glob.name, "NumLink")):
                links.append((self.value(s, "SourceLayerID"), self.value(s, "SourcePinIndex", int),
                              self.value(s, "DestLayerID"), self.value(s, "DestPinIndex", int), j))
            out.append(NncNetwork(net, layers, links))
        return out


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a device"),
          (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))


def open_regular(path, what):
    """`path` opened for reading ('rb') when it is a regular file (links followed); ImportError_
    otherwise. A FIFO is opened without blocking and a device (/dev/zero) refused, so neither
    hangs the import nor streams into memory."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise ImportError_(f"cannot read {path}: {e.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise ImportError_(f"{path}: expected {what}, a regular file; it is {kind}")
    return os.fdopen(fd, "rb")


def read_regular(path, limit, what):
    """The bytes of regular file `path`, at most `limit` of them (ImportError_ beyond)."""
    try:
        with open_regular(path, what) as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise ImportError_(f"cannot read {path}: {e.strerror}") from None
    if len(data) > limit:
        raise ImportError_(f"{path}: expected {what} of at most {limit >> 20} MiB")
    return data


def read(path):
    data = read_regular(path, MAX_BYTES, "an NNC project")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ImportError_(f"{path}:{line}: expected UTF-8 text (an NNC .sdcproj), found byte "
                           f"0x{data[e.start]:02x}") from None
    return Project(path, text)
