#!/usr/bin/env python3
"""No detail name of a kernel layer is used outside that layer.

Each layer of the header-only kernel keeps its internals in a detail
namespace declared only under its detail/ folder:

    core     hotswap::detail           kernel/core/include/hotswap/detail/
    modules  hotswap::modules::detail  kernel/modules/include/hotswap/module/detail/
    watch    hotswap::watch::detail    kernel/watch/include/hotswap/watch/detail/

Outside its layer (the other layers, adapters, stress, bench, tests of other
layers), a file may not include one of those detail headers, name one of those
namespaces, or spell `detail::X` for an X that one of them declares (unless
the file's own component declares an X of its own). A hit names the file, the
line and the layer; the exit status is the number of hits (capped).

    python3 tests/layers/detail_boundary.py [source-dir]
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[2])

# layer: (qualified spellings, detail include prefix, detail folder, places inside the layer)
LAYERS = {
    "core": (r"hotswap::detail::", "hotswap/detail/", "kernel/core/include/hotswap/detail",
             ["kernel/core/", "tests/kernel/", "tests/relacy/", "tests/model/", "tests/explore/",
              # grace policies written against the core's reader records, checked like the core's own
              "tests/policies/"]),
    "modules": (r"(?:hotswap::)?modules::detail::", "hotswap/module/detail/", "kernel/modules/include/hotswap/module/detail",
                ["kernel/modules/", "tests/modules/",
                 # fuzz targets of the loader's own checks
                 "tests/fuzz/elf_check_fuzz.cpp", "tests/fuzz/descriptor_fuzz.cpp"]),
    "watch": (r"(?:hotswap::)?watch::detail::", "hotswap/watch/detail/", "kernel/watch/include/hotswap/watch/detail",
              ["kernel/watch/", "tests/watch/"]),
}
SCANNED = ["kernel", "adapters", "stress", "bench", "tests", "examples"]
SOURCES = {".hpp", ".cpp", ".h", ".cc", ".hh"}
DECLARED = re.compile(r"^\s*(?:template\s*<[^>]*>\s*)?(?:inline\s+|constexpr\s+|static\s+|\[\[[a-z_]+\]\]\s+)*"
                      r"(?:class|struct|enum(?:\s+class)?|using|[\w:<>,\s\*&]+?\s+)\s*(\w+)\s*[({=;:]", re.M)


def declared_names(folder):
    names = set()
    for f in (ROOT / folder).rglob("*.hpp"):
        names.update(m.group(1) for m in DECLARED.finditer(f.read_text(errors="replace")))
    return names - {"operator", "return", "const", "noexcept", "if", "for", "while", "switch"}


def component(rel):
    parts = rel.split("/")
    return "/".join(parts[:2])  # adapters/http, tests/modules, stress/scenarios, ...


def own_names(comp, cache={}):
    """Names a component declares itself: its own detail::X may share a kernel name."""
    if comp not in cache:
        cache[comp] = set()
        for f in (ROOT / comp).rglob("*"):
            if f.suffix in SOURCES and f.is_file():
                cache[comp].update(m.group(1) for m in DECLARED.finditer(f.read_text(errors="replace")))
    return cache[comp]


def main():
    hits = []
    layer_names = {layer: declared_names(spec[2]) for layer, spec in LAYERS.items()}
    for top in SCANNED:
        for f in sorted((ROOT / top).rglob("*")):
            if f.suffix not in SOURCES or not f.is_file():
                continue
            rel = f.relative_to(ROOT).as_posix()
            if rel.startswith(("build/", "tests/relacy/relacy/")) or "/build/" in rel:
                continue
            text = f.read_text(errors="replace")
            for layer, (qualified, include, _, inside) in LAYERS.items():
                if any(rel.startswith(p) for p in inside):
                    continue
                for no, line in enumerate(text.splitlines(), 1):
                    code = line.split("//", 1)[0]
                    if f"<{include}" in line or re.search(r'#include\s+"[^"]*' + re.escape(include), line):
                        hits.append(f"{rel}:{no}: includes a {layer} detail header: {line.strip()}")
                    elif re.search(qualified, code):
                        hits.append(f"{rel}:{no}: uses a {layer} detail name: {line.strip()}")
                    else:
                        for m in re.finditer(r"(?<![\w:])detail::(\w+)", code):
                            name = m.group(1)
                            if name in layer_names[layer] and name not in own_names(component(rel)):
                                hits.append(f"{rel}:{no}: uses {layer}'s detail::{name}: {line.strip()}")
    for h in hits:
        print(h)
    print(f"{len(hits)} use(s) of a layer's detail names outside that layer")
    return min(len(hits), 100)


if __name__ == "__main__":
    sys.exit(main())
