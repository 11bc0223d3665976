"""Checks the npm platform packages that `zig build dist` wrote to zig-out/dist/npm/.

Run through .ci/check-dist. For each platform of native/npm/platforms.json it checks that
the package's files are exactly the library, package.json, README.md and LICENSE; that
package.json is the one npm must see (name, version, os, cpu, and libc on Linux only); that
the library is a shared library of the right format and machine, linked only against the
platform's own system libraries (on Linux: the right libc, since a glibc library does not
load on musl nor the reverse); and that it exports exactly the functions refscope.h
declares. The binaries are parsed here, in Python, because the machine that runs this
may have no tool that reads all three formats (Debian's objdump reads ELF and PE, not
Mach-O).

Prints TAP: `ok N - ...` or `not ok N - ...` with the details as `#` lines, then
`# dist: N passed, M failed`; exits 1 if any check failed.
"""

import json
import re
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "zig-out" / "dist" / "npm"

# Symbols that the linker or the C runtime adds to every library of the format; anything
# else exported that is not in refscope.h fails the check.
LINKER_EXPORTS = {
    "elf": set(),
    "macho": {"_mh_execute_header", "_mh_dylib_header", "__dso_handle"},
    "pe": {"_DllMainCRTStartup"},
}

ELF_MACHINES = {"x64": 62, "arm64": 183}  # EM_X86_64, EM_AARCH64
MACHO_CPUS = {"x64": 0x01000007, "arm64": 0x0100000C}  # CPU_TYPE_X86_64, CPU_TYPE_ARM64
PE_MACHINES = {"x64": 0x8664}  # IMAGE_FILE_MACHINE_AMD64

# The libraries each platform may depend on: its C library and the OS's own. Anything else
# would have to be installed beside refscope, and npm cannot do that.
GLIBC_LIBRARIES = re.compile(r"^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|ld-linux-(x86-64|aarch64)\.so\.[12])$")
MUSL_LIBRARIES = re.compile(r"^libc\.so$")
MACOS_LIBRARIES = re.compile(r"^(/usr/lib/libSystem\.B\.dylib|/usr/lib/system/.*|/System/Library/Frameworks/.*)$")
WINDOWS_LIBRARIES = re.compile(r"^(kernel32|ntdll|advapi32|bcrypt|ws2_32|userenv|ucrtbase|api-ms-win-[a-z0-9-]+)\.dll$", re.IGNORECASE)


class Tap:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, description, problems):
        """Reports one test: it passes when `problems` (a list of strings) is empty."""
        number = self.passed + self.failed + 1
        if problems:
            self.failed += 1
            print(f"not ok {number} - {description}")
            for problem in problems:
                print(f"#   {problem}")
        else:
            self.passed += 1
            print(f"ok {number} - {description}")

    def note(self, text):
        print(f"# {text}")


class Malformed(Exception):
    pass


def c_string(data, offset):
    end = data.index(b"\0", offset)
    return data[offset:end].decode("utf-8", "replace")


def header_functions():
    """The functions refscope.h declares: every `refscope_*(` outside comments (function
    pointer typedefs read `(*refscope_x)(`, so they do not match)."""
    text = (ROOT / "native" / "include" / "refscope.h").read_text()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    return set(re.findall(r"\b(refscope_[a-z0-9_]+)\s*\(", text))


# --- ELF ------------------------------------------------------------------------------------


def read_elf(data):
    if data[:4] != b"\x7fELF":
        raise Malformed("not ELF")
    if data[4] != 2 or data[5] != 1:
        raise Malformed(f"not little-endian ELF64 (class {data[4]}, data {data[5]})")
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    e_shoff = struct.unpack_from("<Q", data, 0x28)[0]
    e_shentsize, e_shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = []
    for index in range(e_shnum):
        (_, sh_type, _, _, sh_offset, sh_size, sh_link, _, _, sh_entsize) = struct.unpack_from(
            "<IIQQQQIIQQ", data, e_shoff + index * e_shentsize
        )
        sections.append((sh_type, sh_offset, sh_size, sh_link, sh_entsize))

    exports, needed, glibc_versions = set(), [], set()
    for sh_type, offset, size, link, entsize in sections:
        strings = sections[link][1] if link < len(sections) else 0
        if sh_type == 11:  # SHT_DYNSYM
            for at in range(offset + entsize, offset + size, entsize):  # entry 0 is null
                st_name, st_info, st_other, st_shndx = struct.unpack_from("<IBBH", data, at)
                binding, kind, visibility = st_info >> 4, st_info & 0xF, st_other & 0x3
                # Defined, global or weak, default or protected visibility: what dlsym finds.
                if st_shndx != 0 and binding in (1, 2) and visibility in (0, 3):
                    exports.add((c_string(data, strings + st_name), kind == 2))  # STT_FUNC
        elif sh_type == 6:  # SHT_DYNAMIC
            for at in range(offset, offset + size, 16):
                tag, value = struct.unpack_from("<qQ", data, at)
                if tag == 1:  # DT_NEEDED
                    needed.append(c_string(data, strings + value))
        elif sh_type == 0x6FFFFFFE:  # SHT_GNU_verneed
            at = offset
            while True:
                _, count, _, aux, following = struct.unpack_from("<HHIII", data, at)
                entry = at + aux
                for _ in range(count):
                    _, _, _, name, next_aux = struct.unpack_from("<IHHII", data, entry)
                    glibc_versions.add(c_string(data, strings + name))
                    entry += next_aux
                if following == 0:
                    break
                at += following
    return {
        "format": "elf",
        "description": f"ELF64 e_type {e_type} e_machine {e_machine}",
        "shared": e_type == 3,  # ET_DYN
        "machine": e_machine,
        "exports": exports,
        "needed": needed,
        "glibc": sorted(
            (v for v in glibc_versions if v.startswith("GLIBC_2.")),
            key=lambda v: tuple(int(part) for part in v[6:].split(".")),
        ),
    }


# --- Mach-O ---------------------------------------------------------------------------------


def uleb128(data, offset):
    result, shift = 0, 0
    while True:
        byte = data[offset]
        offset += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, offset


def export_trie(data, start, size):
    """The names in a dyld export trie: what dlsym finds in the image."""
    names, pending, seen = set(), [(0, "")], set()
    while pending:
        node, prefix = pending.pop()
        if node in seen or node >= size:
            raise Malformed("export trie loops or overruns")
        seen.add(node)
        terminal_size, at = uleb128(data, start + node)
        if terminal_size:
            names.add(prefix)
        at += terminal_size
        children = data[at]
        at += 1
        for _ in range(children):
            end = data.index(b"\0", at)
            edge = data[at:end].decode()
            child, at = uleb128(data, end + 1)
            pending.append((child, prefix + edge))
    return names


def read_macho(data):
    magic, cputype, _, filetype, ncmds, _, _ = struct.unpack_from("<IiiIIII", data, 0)
    if magic != 0xFEEDFACF:
        raise Malformed(f"not a little-endian 64-bit Mach-O (magic {magic:#x})")
    at = 32
    trie = symtab = None
    needed, minos = [], None
    for _ in range(ncmds):
        cmd, cmdsize = struct.unpack_from("<II", data, at)
        if cmd == 0x80000022:  # LC_DYLD_INFO_ONLY
            trie = struct.unpack_from("<II", data, at + 40)
        elif cmd == 0x80000033:  # LC_DYLD_EXPORTS_TRIE
            trie = struct.unpack_from("<II", data, at + 8)
        elif cmd == 0x2:  # LC_SYMTAB
            symtab = struct.unpack_from("<IIII", data, at + 8)
        elif cmd in (0xC, 0x80000018, 0x8000001F, 0x80000023):  # LC_(LOAD|LOAD_WEAK|REEXPORT|LOAD_UPWARD)_DYLIB
            needed.append(c_string(data, at + struct.unpack_from("<I", data, at + 8)[0]))
        elif cmd == 0x32:  # LC_BUILD_VERSION
            version = struct.unpack_from("<I", data, at + 12)[0]
            minos = f"{version >> 16}.{(version >> 8) & 0xFF}.{version & 0xFF}"
        at += cmdsize

    if trie and trie[1]:
        exported = export_trie(data, trie[0], trie[1])
    elif symtab:  # no trie: the external symbols defined in a section
        symoff, nsyms, stroff, _ = symtab
        exported = set()
        for index in range(nsyms):
            n_strx, n_type = struct.unpack_from("<IB", data, symoff + index * 16)
            if n_type & 0x01 and n_type & 0x0E == 0x0E:  # N_EXT, N_SECT
                exported.add(c_string(data, stroff + n_strx))
    else:
        raise Malformed("no export trie and no symbol table")
    # C names carry a leading underscore in Mach-O. Every export here is code but the
    # linker's own symbols, which LINKER_EXPORTS lists.
    exports = {(name[1:] if name.startswith("_") else name, True) for name in exported}
    return {
        "format": "macho",
        "description": f"Mach-O 64-bit filetype {filetype} cputype {cputype:#x}",
        "shared": filetype == 6,  # MH_DYLIB
        "machine": cputype,
        "exports": exports,
        "needed": needed,
        "minos": minos,
    }


# --- PE -------------------------------------------------------------------------------------


def read_pe(data):
    if data[:2] != b"MZ":
        raise Malformed("not PE (no MZ header)")
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    if data[pe : pe + 4] != b"PE\0\0":
        raise Malformed("not PE (no PE signature)")
    machine, nsections, _, _, _, optional_size, characteristics = struct.unpack_from("<HHIIIHH", data, pe + 4)
    optional = pe + 24
    magic = struct.unpack_from("<H", data, optional)[0]
    if magic != 0x20B:
        raise Malformed(f"not PE32+ (optional header magic {magic:#x})")
    directories = optional + 112
    ndirectories = struct.unpack_from("<I", data, optional + 108)[0]
    sections = [
        struct.unpack_from("<IIII", data, optional + optional_size + index * 40 + 8) for index in range(nsections)
    ]

    def offset(rva):
        for virtual_size, address, raw_size, raw_offset in sections:
            if address <= rva < address + max(virtual_size, raw_size):
                return rva - address + raw_offset
        raise Malformed(f"RVA {rva:#x} is in no section")

    def directory(index):
        return struct.unpack_from("<II", data, directories + index * 8) if index < ndirectories else (0, 0)

    exports = set()
    export_rva, export_size = directory(0)
    if export_size:
        table = offset(export_rva)
        nnames, _, names_rva = struct.unpack_from("<III", data, table + 24)
        for index in range(nnames):
            name_rva = struct.unpack_from("<I", data, offset(names_rva) + index * 4)[0]
            # PE exports do not say code from data; DLLs built here export code only.
            exports.add((c_string(data, offset(name_rva)), True))

    needed = []
    import_rva, import_size = directory(1)
    if import_size:
        at = offset(import_rva)
        while True:
            name_rva = struct.unpack_from("<I", data, at + 12)[0]
            if name_rva == 0:
                break
            needed.append(c_string(data, offset(name_rva)))
            at += 20
    return {
        "format": "pe",
        "description": f"PE32+ machine {machine:#x} characteristics {characteristics:#x}",
        "shared": bool(characteristics & 0x2000),  # IMAGE_FILE_DLL
        "machine": machine,
        "exports": exports,
        "needed": needed,
    }


# --- Checks ---------------------------------------------------------------------------------


def expected_binary(platform):
    """(format, machine, what it is called, the libraries it may and must depend on)."""
    os, cpu, libc = platform["os"], platform["cpu"], platform.get("libc")
    if os == "linux":
        if libc == "glibc":
            return "elf", ELF_MACHINES.get(cpu), "ELF64 shared object", GLIBC_LIBRARIES, "libc.so.6"
        if libc == "musl":
            return "elf", ELF_MACHINES.get(cpu), "ELF64 shared object", MUSL_LIBRARIES, "libc.so"
        return "elf", None, f"ELF64 for libc {libc!r}", None, None
    if os == "darwin":
        return "macho", MACHO_CPUS.get(cpu), "Mach-O 64-bit dylib", MACOS_LIBRARIES, "/usr/lib/libSystem.B.dylib"
    if os == "win32":
        return "pe", PE_MACHINES.get(cpu), "PE32+ DLL", WINDOWS_LIBRARIES, None
    return None, None, f"a library for os {os!r}", None, None


def check_manifest(tap, platform, directory, version):
    name = platform["name"]
    problems = []
    try:
        manifest = json.loads((directory / "package.json").read_text())
    except (OSError, ValueError) as error:
        tap.check(f"{name}: package.json", [f"cannot read it: {error}"])
        return
    linux = platform["os"] == "linux"
    expected = {
        "name": f"@refscope/{name}",
        "version": version,
        "license": "MIT",
        "os": [platform["os"]],
        "cpu": [platform["cpu"]],
        # Scoped packages are published as restricted (paid, private) unless this says public.
        "publishConfig": {"access": "public"},
    }
    if linux:
        expected["libc"] = [platform["libc"]]
    for key, value in expected.items():
        if manifest.get(key) != value:
            problems.append(f"{key} is {json.dumps(manifest.get(key))}, expected {json.dumps(value)}")
    if not linux and "libc" in manifest:
        problems.append(f"libc is {json.dumps(manifest['libc'])}: npm's libc field is for Linux only")
    if not isinstance(manifest.get("description"), str) or not manifest["description"]:
        problems.append("no description")
    files = manifest.get("files")
    if not isinstance(files, list) or sorted(files) != sorted([platform["file"], "README.md", "LICENSE"]):
        problems.append(f"files is {json.dumps(files)}, expected {platform['file']}, README.md and LICENSE")
    tap.check(f"{name}: package.json is {expected['name']}@{version} for {platform['os']}/{platform['cpu']}"
              + (f"/{platform['libc']}" if linux else ""), problems)


def check_files(tap, platform, directory):
    problems = []
    present = {path.name for path in directory.iterdir()} if directory.is_dir() else set()
    expected = {platform["file"], "package.json", "README.md", "LICENSE"}
    if not directory.is_dir():
        problems.append(f"{directory.relative_to(ROOT)} is missing: run `zig build dist`")
    else:
        if missing := sorted(expected - present):
            problems.append(f"missing: {', '.join(missing)}")
        if extra := sorted(present - expected):
            problems.append(f"not part of the package: {', '.join(extra)}")
        library = directory / platform["file"]
        if library.is_file() and library.stat().st_size == 0:
            problems.append(f"{platform['file']} is empty")
        license = directory / "LICENSE"
        if license.is_file() and license.read_bytes() != (ROOT / "LICENSE").read_bytes():
            problems.append("LICENSE differs from the repository's")
        readme = directory / "README.md"
        if readme.is_file() and f"@refscope/{platform['name']}" not in readme.read_text():
            problems.append("README.md does not name the package")
    tap.check(f"{platform['name']}: the package holds {platform['file']}, package.json, README.md and LICENSE", problems)


def check_library(tap, platform, directory, declared):
    name, file = platform["name"], platform["file"]
    format, machine, label, allowed, libc = expected_binary(platform)
    try:
        data = (directory / file).read_bytes()
        binary = {"elf": read_elf, "macho": read_macho, "pe": read_pe}[format](data) if format else None
    except (OSError, Malformed, struct.error, ValueError, IndexError) as error:
        tap.check(f"{name}: {file}: {label} for {platform['cpu']}", [f"cannot read it as one: {error}"])
        tap.check(f"{name}: {file} exports exactly the {len(declared)} functions of refscope.h", ["not checked: unreadable"])
        return

    problems = []
    if binary is None or machine is None:
        problems.append(f"no expectation for {platform['os']}/{platform['cpu']}: teach .ci/check-dist.py the platform")
    else:
        if not binary["shared"] or binary["machine"] != machine:
            problems.append(f"it is {binary['description']}; expected: {label}, machine {machine:#x}")
        if strays := [lib for lib in binary["needed"] if not allowed.match(lib)]:
            problems.append(f"depends on libraries that are not the platform's own: {', '.join(strays)}")
        if libc and libc not in binary["needed"]:
            problems.append(f"does not link {libc}: it links {', '.join(binary['needed']) or 'nothing'}")
        # A gnu triple names the oldest glibc the package supports ("x86_64-linux-gnu.2.17"):
        # no symbol may need a newer one, or the dynamic loader refuses the library there.
        floor = platform["zig"].partition("-gnu.")[2]
        if floor and binary.get("glibc"):
            newest = binary["glibc"][-1][6:]
            if tuple(map(int, newest.split("."))) > tuple(map(int, floor.split("."))):
                problems.append(f"needs glibc {newest}, newer than the {floor} of platforms.json")
        # A macOS triple names the oldest macOS the package supports ("x86_64-macos.11.0"):
        # the dylib must not ask for a newer one, or dyld refuses to load it there.
        wanted = platform["zig"].partition("-macos.")[2]
        if wanted and binary.get("minos") != (wanted if wanted.count(".") == 2 else wanted + ".0"):
            problems.append(f"needs macOS {binary.get('minos')}, expected {wanted} from platforms.json")
    tap.check(f"{name}: {file}: {label} for {platform['cpu']}" + (f", linked against {libc}" if libc else ""), problems)
    if binary is None:
        return
    tap.note(f"{name}: depends on {', '.join(binary['needed'])}")
    if binary.get("glibc"):
        tap.note(f"{name}: needs glibc {binary['glibc'][-1][6:]} or newer")
    if binary.get("minos"):
        tap.note(f"{name}: needs macOS {binary['minos']} or newer")

    problems = []
    functions = {symbol for symbol, is_function in binary["exports"] if symbol.startswith("refscope_") and is_function}
    if missing := sorted(declared - functions):
        problems.append(f"declared in refscope.h, not exported: {', '.join(missing)}")
    if extra := sorted(functions - declared):
        problems.append(f"exported, not declared in refscope.h: {', '.join(extra)}")
    others = {symbol for symbol, _ in binary["exports"]} - functions - LINKER_EXPORTS[binary["format"]]
    if others:
        problems.append(f"exports symbols that are neither refscope.h's nor the linker's: {', '.join(sorted(others))}")
    tap.check(f"{name}: {file} exports exactly the {len(declared)} functions of refscope.h", problems)


def check_resolver(tap, platforms, version):
    """The resolver package must offer exactly these platforms, at this version."""
    directory = DIST / "native"
    problems = []
    try:
        manifest = json.loads((directory / "package.json").read_text())
    except (OSError, ValueError) as error:
        tap.check("native: the resolver @refscope/native", [f"cannot read its package.json: {error}"])
        return
    expected = {f"@refscope/{platform['name']}": version for platform in platforms}
    if manifest.get("name") != "@refscope/native" or manifest.get("version") != version:
        problems.append(f"it is {manifest.get('name')}@{manifest.get('version')}, expected @refscope/native@{version}")
    if manifest.get("optionalDependencies") != expected:
        problems.append(f"optionalDependencies are {json.dumps(manifest.get('optionalDependencies'))}, expected {json.dumps(expected)}")
    if manifest.get("publishConfig") != {"access": "public"}:
        problems.append("publishConfig.access is not public: npm would publish it as restricted")
    if manifest.get("dependencies"):
        problems.append("a platform package must not be a hard dependency: only one fits any machine")
    for file in manifest.get("files", []) + ["package.json"]:
        if not (directory / file).is_file():
            problems.append(f"{file} is missing")
    tap.check(f"native: @refscope/native@{version} offers the {len(platforms)} platform packages as optional dependencies", problems)


def main():
    tap = Tap()
    declared = header_functions()
    tap.check(f"refscope.h declares {len(declared)} refscope_* functions", [] if declared else ["none found"])
    try:
        platforms = json.loads((ROOT / "native" / "npm" / "platforms.json").read_text())
        version = json.loads((ROOT / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError) as error:
        tap.check("native/npm/platforms.json and package.json are readable", [str(error)])
        platforms = []
    for platform in platforms:
        directory = DIST / platform["name"]
        check_files(tap, platform, directory)
        check_manifest(tap, platform, directory, version)
        check_library(tap, platform, directory, declared)
    if platforms:
        check_resolver(tap, platforms, version)
    print(f"# dist: {tap.passed} passed, {tap.failed} failed")
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())
