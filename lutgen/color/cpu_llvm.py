"""8-bit trilinear grading compiled with LLVM through llvmlite, without Numba.

The common case of grading (8-bit pixels, trilinear interpolation, a 3D table small enough for the
red-interpolated table of :mod:`lutgen.color.cpu`) needs two small loops: one builds that table
(:func:`red_lerped`), the other grades the pixels (:func:`grade_red_lerped`). They are written here with
llvmlite's IR builder, compiled for the host CPU with LLVM's O3 pipeline and called through ctypes,
which releases the GIL while they run. Importing llvmlite's binding and loading them take a few
hundredths of a second; importing Numba and loading a cached Numba kernel take about half a second,
which was half of ``lutgen infer`` on one photo.

The loops compute what Numba's 8-bit kernel computed, with the same float64 operations in the same
order (see :func:`_emit_pixel`), and let a multiply and an add fuse (``contract``) as it did: the codes
are the same. Like it, they stay scalar; vectorised, their table lookups become gathers, which were
five times slower than scalar loads here, so LLVM's loop vectoriser is off.

Compiling takes 35-70 ms, so the machine code is cached on disk where Numba caches lutgen's other
kernels (``__pycache__`` beside this module, or ``NUMBA_CACHE_DIR``), keyed by llvmlite's version, the
host CPU and its features, and the IR; a process that finds it there skips LLVM's optimisation and
code generation, and loads it in a few milliseconds.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lutgen import interrupts
from lutgen.devices import available_cores
from lutgen.errors import LutgenError
from lutgen.fileio import atomic_write_bytes

CODES = 256
"""Code values of an 8-bit channel."""

_FLAGS = ("contract",)  # a multiply and an add may be one fused operation, as in the Numba kernels


def red_lerped(table: np.ndarray, index: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """The ``(n, n, n, 3)`` table interpolated along red at every code, ``(n, n, 256, 3)`` ``[b, g, code, c]``
    flattened.

    ``index``/``frac`` ``(256,)`` are each code's red cell (int64, ``0..n-2``) and fraction in it; each
    entry mixes the two red nodes around its code, ``(1 - f) * t[i] + f * t[i + 1]``, as the trilinear
    interpolation does first.
    """
    n = table.shape[0]
    arrays_fit = (
        table.shape == (n, n, n, 3) and table.dtype == frac.dtype == np.float64 and index.dtype == np.int64
        and index.shape == frac.shape == (CODES,) and all(a.flags.c_contiguous for a in (table, index, frac))
        and 0 <= index.min() and index.max() <= n - 2
    )
    if not arrays_fit:
        raise ValueError("red_lerped: arrays of the wrong type, shape, layout or range")
    out = np.empty(n * n * CODES * 3)
    _compiled().red_lerp(table.ctypes.data, index.ctypes.data, frac.ctypes.data, n, out.ctypes.data)
    return out


def grade_red_lerped(pixels: np.ndarray, out: np.ndarray, rt: np.ndarray, rows: np.ndarray, frac: np.ndarray,
                     n: int, strength: float, parallel: bool) -> None:
    """Grade 8-bit ``pixels`` ``(P, 3)`` trilinearly into ``out`` ``(P, 3)`` or ``(P, 4)`` (the first 3 channels).

    ``rt`` is the table of :func:`red_lerped` for an ``n``-node table; ``rows`` ``(2, 256)`` int64 the
    offset in ``rt`` of each green and blue code's cell; ``frac`` ``(2, 256)`` float64 each green and
    blue code's fraction in its cell. All C-contiguous. ``parallel`` grades on every core: the pixels are
    split into 8 runs per core, which a thread per core (the calling thread one of them) takes one after
    another, so that a core slowed by another process does fewer; otherwise the calling thread grades
    them all.
    """
    count = pixels.shape[0]
    step = 3 * CODES * (n - 2)  # the offset of the last cell along green (blue: n times that)
    arrays_fit = (
        pixels.ndim == out.ndim == 2 and pixels.shape[1] == 3 and out.shape[0] == count and out.shape[1] in (3, 4)
        and pixels.dtype == out.dtype == np.uint8 and rt.dtype == frac.dtype == np.float64 and rows.dtype == np.int64
        and rt.size == n * n * CODES * 3 and rows.shape == frac.shape == (2, CODES)
        and all(array.flags.c_contiguous for array in (pixels, out, rt, rows, frac))
        and 0 <= rows.min() and rows[0].max() <= step and rows[1].max() <= step * n
    )
    if not arrays_fit:
        raise ValueError("grade_red_lerped: arrays of the wrong type, shape, layout or range")
    grade = _compiled().grade

    def run(first: int, stop: int) -> None:
        grade(pixels.ctypes.data, out.ctypes.data, first, stop, out.shape[1], rt.ctypes.data, rows.ctypes.data,
              frac.ctypes.data, n, 255.0, strength)

    cores = available_cores() if parallel else 1
    runs = _chunks(count, 8 * cores if parallel else 1)
    taking = threading.Lock()

    def work() -> None:
        while True:
            with taking:
                if not runs:
                    return
                first, stop = runs.pop()
            run(first, stop)

    threads = [threading.Thread(target=work, name="lutgen-grade") for _ in range(min(cores, len(runs)) - 1)]
    with interrupts.held():  # Ctrl-C raised while ``taking`` is held would block the other threads for good
        for thread in threads:
            thread.start()
        work()
        for thread in threads:
            thread.join()


def _chunks(count: int, parts: int) -> list[tuple[int, int]]:
    """``[first, stop)`` ranges splitting ``range(count)`` into at most ``parts`` runs of nearly equal length."""
    parts = max(1, min(parts, count))
    bounds = [count * i // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts)]


# --------------------------------------------------------------------------------------------
# The kernels' IR
# --------------------------------------------------------------------------------------------

# The functions of the module: name, then each argument's name and type (u8*, i64*, f64*, i64 or f64).
_FUNCTIONS = {
    "grade": (("pixels", "u8*"), ("out", "u8*"), ("first", "i64"), ("stop", "i64"), ("out_channels", "i64"),
              ("rt", "f64*"), ("rows", "i64*"), ("frac", "f64*"), ("n", "i64"), ("maxv", "f64"), ("strength", "f64")),
    "red_lerp": (("table", "f64*"), ("index", "i64*"), ("frac", "f64*"), ("n", "i64"), ("out", "f64*")),
}


def kernel_ir() -> str:
    """The LLVM IR of the module, unoptimised: ``grade`` (:func:`_emit_grade`) and ``red_lerp``
    (:func:`_emit_red_lerp`), with the arguments of :data:`_FUNCTIONS`."""
    from llvmlite import ir

    module = ir.Module(name="lutgen_grade_8bit")
    _emit_grade(*_declare(module, "grade"))
    _emit_red_lerp(*_declare(module, "red_lerp"))
    return str(module)


def _declare(module, name: str):
    """The function ``name`` of :data:`_FUNCTIONS` declared in ``module``: an IR builder at its entry, and
    its arguments by name. Every pointer is ``noalias``: each array is its own (``out`` never overlaps
    ``pixels``)."""
    from llvmlite import ir

    types = {"u8*": ir.IntType(8).as_pointer(), "i64*": ir.IntType(64).as_pointer(),
             "f64*": ir.DoubleType().as_pointer(), "i64": ir.IntType(64), "f64": ir.DoubleType()}
    arguments = _FUNCTIONS[name]
    function = ir.Function(module, ir.FunctionType(ir.VoidType(), [types[kind] for _, kind in arguments]), name=name)
    for argument, (argument_name, kind) in zip(function.args, arguments, strict=True):
        argument.name = argument_name
        if kind.endswith("*"):
            argument.add_attribute("noalias")
    return ir.IRBuilder(function.append_basic_block("entry")), {a.name: a for a in function.args}


def _loop(builder, start, stop, name: str, body) -> None:
    """Emit ``for i in range(start, stop): body(i)`` (``i`` an i64 named ``name``); the builder goes on after it."""
    from llvmlite import ir

    i64 = ir.IntType(64)
    before = builder.block
    loop = builder.function.append_basic_block(name)
    after = builder.function.append_basic_block(name + "_done")
    builder.cbranch(builder.icmp_signed("<", start, stop), loop, after)
    builder.position_at_end(loop)
    i = builder.phi(i64, name=name)
    i.add_incoming(start, before)
    body(i)
    following = builder.add(i, ir.Constant(i64, 1), name=name + "_next")
    i.add_incoming(following, builder.block)
    builder.cbranch(builder.icmp_signed("<", following, stop), loop, after)
    builder.position_at_end(after)


def _mix(builder, a, b, f, g):
    """``g * a + f * b`` (``g = 1 - f``): exactly ``a`` at ``f = 0`` and exactly ``b`` at ``f = 1``."""
    return builder.fadd(builder.fmul(g, a, flags=_FLAGS), builder.fmul(f, b, flags=_FLAGS), flags=_FLAGS)


def _element(builder, pointer, index, name: str = ""):
    """``pointer[index]``."""
    return builder.load(builder.gep(pointer, [index], inbounds=True), name=name)


def _emit_red_lerp(builder, a: dict) -> None:
    """``red_lerp(table, index, frac, n, out)``: fills ``out`` as :func:`red_lerped` returns it.

    For each row ``b * n + g`` of the table and each code ``v``, with ``q`` the row's red node
    ``index[v]`` and ``f = frac[v]``: ``out[row, v, c] = mix(table[row, q, c], table[row, q + 1, c], f, 1 - f)``.
    """
    from llvmlite import ir

    i64, f64 = ir.IntType(64), ir.DoubleType()
    n = a["n"]
    row_length = builder.mul(n, ir.Constant(i64, 3), name="row_length")

    def row_body(row):
        table_row = builder.mul(row, row_length, name="table_row")
        out_row = builder.mul(row, ir.Constant(i64, 3 * CODES), name="out_row")

        def code_body(v):
            q = builder.add(table_row, builder.mul(_element(builder, a["index"], v, "i"), ir.Constant(i64, 3)))
            f = _element(builder, a["frac"], v, "f")
            g = builder.fsub(ir.Constant(f64, 1.0), f, name="g", flags=_FLAGS)
            o = builder.add(out_row, builder.mul(v, ir.Constant(i64, 3)))
            for c in range(3):
                below = _element(builder, a["table"], builder.add(q, ir.Constant(i64, c)))
                above = _element(builder, a["table"], builder.add(q, ir.Constant(i64, 3 + c)))
                target = builder.gep(a["out"], [builder.add(o, ir.Constant(i64, c))], inbounds=True)
                builder.store(_mix(builder, below, above, f, g), target)

        _loop(builder, ir.Constant(i64, 0), ir.Constant(i64, CODES), "v", code_body)

    _loop(builder, ir.Constant(i64, 0), builder.mul(n, n, name="rows"), "row", row_body)
    builder.ret_void()


def _emit_grade(builder, a: dict) -> None:
    """``grade(pixels, out, first, stop, out_channels, rt, rows, frac, n, maxv, strength)``: pixels ``first``
    to ``stop - 1`` graded (see :func:`grade_red_lerped`; ``maxv`` is 255).

    The test ``strength != 1`` is made once, before two copies of the loop over the pixels
    (:func:`_emit_pixel`), without and with the blend.
    """
    from llvmlite import ir

    i64, f64 = ir.IntType(64), ir.DoubleType()
    constants = {
        "sg": ir.Constant(i64, 3 * CODES),  # one green step in rt
        "sb": builder.mul(a["n"], ir.Constant(i64, 3 * CODES), name="sb"),  # one blue step
        "scale": builder.fdiv(ir.Constant(f64, 1.0), a["maxv"], name="scale", flags=_FLAGS),
        "keep": builder.fsub(ir.Constant(f64, 1.0), a["strength"], name="keep", flags=_FLAGS),
    }
    plain = builder.function.append_basic_block("plain")
    blended = builder.function.append_basic_block("blended")
    is_blended = builder.fcmp_unordered("!=", a["strength"], ir.Constant(f64, 1.0), name="is_blended")
    builder.cbranch(is_blended, blended, plain)
    for block, blend in ((plain, False), (blended, True)):
        builder.position_at_end(block)
        _loop(builder, a["first"], a["stop"], "p", lambda p, blend=blend: _emit_pixel(builder, a, constants, p, blend))
        builder.ret_void()


def _emit_pixel(builder, a: dict, constants: dict, p, blend: bool) -> None:
    """Pixel ``p`` graded into ``out``: trilinear interpolation from the red-interpolated table, then the code.

    ``k = 3 * r + rows[0, g] + rows[1, b]`` is the pixel's cell in ``rt``; with ``f = frac`` and
    ``mix(a, b, f, g) = g * a + f * b``, each channel ``c`` is
    ``y = mix(mix(rt[q], rt[q + sg], fg, 1 - fg), mix(rt[q + sb], rt[q + sg + sb], fg, 1 - fg), fb, 1 - fb)``
    at ``q = k + c``; blended, ``y = mix(x / maxv, y, strength, 1 - strength)`` with ``x`` the input code
    (the division as a multiplication by ``1 / maxv``); the code is ``int(clamp(y * maxv, 0, maxv) + 0.5)``,
    the clamps as selects (NaN gives 0).
    """
    from llvmlite import ir

    i8, i64, f64 = ir.IntType(8), ir.IntType(64), ir.DoubleType()

    def const(value):
        return ir.Constant(i64, value)

    base = builder.mul(p, const(3))
    codes = [builder.zext(_element(builder, a["pixels"], builder.add(base, const(c)), "rgb"[c]), i64)
             for c in range(3)]
    r, g, b = codes
    k = builder.add(builder.add(builder.mul(r, const(3)), _element(builder, a["rows"], g, "row_g")),
                    _element(builder, a["rows"], builder.add(b, const(CODES)), "row_b"), name="k")
    fg = _element(builder, a["frac"], g, "fg")
    fb = _element(builder, a["frac"], builder.add(b, const(CODES)), "fb")
    one = ir.Constant(f64, 1.0)
    gg = builder.fsub(one, fg, name="gg", flags=_FLAGS)
    gb = builder.fsub(one, fb, name="gb", flags=_FLAGS)
    sg, sb = constants["sg"], constants["sb"]
    maxv, zero = a["maxv"], ir.Constant(f64, 0.0)
    target = builder.mul(p, a["out_channels"])
    for c in range(3):
        q = builder.add(k, const(c))
        corner = [_element(builder, a["rt"], offset, f"t{c}") for offset in
                  (q, builder.add(q, sg), builder.add(q, sb), builder.add(builder.add(q, sg), sb))]
        y = _mix(builder, _mix(builder, corner[0], corner[1], fg, gg), _mix(builder, corner[2], corner[3], fg, gg),
                 fb, gb)
        if blend:
            x = builder.fmul(builder.uitofp(codes[c], f64), constants["scale"], flags=_FLAGS)
            y = _mix(builder, x, y, a["strength"], constants["keep"])
        v = builder.fmul(y, maxv, flags=_FLAGS)
        v = builder.select(builder.fcmp_ordered(">", v, zero), v, zero)
        v = builder.select(builder.fcmp_ordered("<", v, maxv), v, maxv)
        code = builder.fptosi(builder.fadd(v, ir.Constant(f64, 0.5), flags=_FLAGS), i64)
        builder.store(builder.trunc(code, i8), builder.gep(a["out"], [builder.add(target, const(c))], inbounds=True))


# --------------------------------------------------------------------------------------------
# Compiling, caching, calling
# --------------------------------------------------------------------------------------------

_C_TYPES = {"u8*": ctypes.c_void_p, "i64*": ctypes.c_void_p, "f64*": ctypes.c_void_p, "i64": ctypes.c_int64,
            "f64": ctypes.c_double}


class _Kernels(NamedTuple):
    """The module's functions, callable through ctypes (which releases the GIL during each call)."""

    grade: Callable[..., None]
    red_lerp: Callable[..., None]


_lock = threading.Lock()
_kernels: _Kernels | None = None
_keep_alive: tuple = ()  # the execution engine and target machine that own the machine code


def _compiled() -> _Kernels:
    """The kernels, compiled (or loaded from the disk cache) on the first call."""
    global _kernels, _keep_alive
    if _kernels is None:
        with _lock:
            if _kernels is None:
                kernels, *_keep_alive = _compile()
                _kernels = kernels
    return _kernels


def _compile():
    """Compile :func:`kernel_ir` for this machine: the :class:`_Kernels`, and the objects that must outlive them."""
    import llvmlite
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    cpu, features = llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()
    machine = llvm.Target.from_default_triple().create_target_machine(cpu=cpu, features=features, opt=3)
    text = kernel_ir()
    key = hashlib.sha256("\n".join([llvmlite.__version__, machine.triple, cpu, features, text]).encode()).hexdigest()
    cached = _cache_file(key)
    code = _read(cached)
    module = llvm.parse_assembly(text)
    module.triple = machine.triple
    module.data_layout = str(machine.target_data)
    if code is None:  # optimise; with machine code from the cache, the IR is only its key
        module.verify()
        options = llvm.create_pipeline_tuning_options(speed_level=3)
        options.loop_vectorization = False  # gathers of table entries: slower than scalar loads
        builder = llvm.create_pass_builder(machine, options)
        builder.getModulePassManager().run(module, builder)
    engine = llvm.create_mcjit_compiler(module, machine)
    engine.set_object_cache(lambda _module, buffer: _write(cached, buffer), lambda _module: code)
    engine.finalize_object()
    functions = {
        name: ctypes.CFUNCTYPE(None, *(_C_TYPES[kind] for _, kind in arguments))(engine.get_function_address(name))
        for name, arguments in _FUNCTIONS.items()
    }
    return _Kernels(**functions), engine, machine


def _cache_file(key: str) -> Path | None:
    """Where the machine code of ``key`` is kept (None if nowhere can be written).

    Where Numba keeps lutgen's other kernels: in ``NUMBA_CACHE_DIR`` when that is set, else in
    ``__pycache__`` beside this module; failing that, in the user's cache folder.
    """
    numba_folder = os.environ.get("NUMBA_CACHE_DIR")
    first = Path(numba_folder) / "lutgen" if numba_folder else Path(__file__).parent / "__pycache__"
    for folder in (first, _user_cache()):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            return folder / f"cpu_llvm.grade-{key[:32]}.o"
    return None


def _user_cache() -> Path:
    """The user's cache folder for lutgen (``%LOCALAPPDATA%``, ``~/Library/Caches`` or ``$XDG_CACHE_HOME``)."""
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "lutgen"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "lutgen"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lutgen"


def _read(path: Path | None) -> bytes | None:
    """The machine code kept in ``path``, or None when there is none (or it is not whole).

    The file holds the SHA-256 of the code, then the code: a file that is not what was written is
    compiled again rather than run.
    """
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None
    digest, code = data[:32], data[32:]
    return code if code and hashlib.sha256(code).digest() == digest else None


def _write(path: Path | None, code: bytes) -> None:
    """Keep ``code`` in ``path`` (see :func:`_read`), atomically (:func:`lutgen.fileio.atomic_write_bytes`).

    Failing to write only costs the next process the compilation.
    """
    if path is None:
        return
    with contextlib.suppress(OSError, LutgenError):
        atomic_write_bytes(path, hashlib.sha256(code).digest() + code)
