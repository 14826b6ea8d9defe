"""8-bit trilinear grading compiled with LLVM through llvmlite, without Numba.

The common case of grading (8-bit pixels, trilinear interpolation, a 3D table small enough for the
red-interpolated table of :mod:`lutgen.color.cpu`) needs one small loop. It is written here with
llvmlite's IR builder, compiled for the host CPU with LLVM's O3 pipeline and called through ctypes,
which releases the GIL while it runs. Importing llvmlite's binding and loading this one function take
a few hundredths of a second; importing Numba and loading a cached Numba kernel take about half a
second, which was half of ``lutgen infer`` on one photo.

The loop computes what Numba's integer kernel computes, with the same float64 operations in the same
order (see :func:`_emit_pixel`), and lets a multiply and an add fuse (``contract``) as it does. Like it,
the loop stays scalar: LLVM does not vectorise its table lookups, even when asked to.

Compiling takes about 30 ms, so the machine code is cached on disk where Numba caches lutgen's other
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
from pathlib import Path

import numpy as np

from lutgen.devices import available_cores

CODES = 256
"""Code values of an 8-bit channel."""

_NAME = "grade"
_ARGUMENTS = ("pixels", "out", "first", "stop", "out_channels", "rt", "rows", "frac", "n", "maxv", "strength")
_FLAGS = ("contract",)  # a multiply and an add may be one fused operation, as in the Numba kernels


def grade_red_lerped(pixels: np.ndarray, out: np.ndarray, rt: np.ndarray, rows: np.ndarray, frac: np.ndarray,
                     n: int, strength: float, parallel: bool) -> None:
    """Grade 8-bit ``pixels`` ``(P, 3)`` trilinearly into ``out`` ``(P, 3)`` or ``(P, 4)`` (the first 3 channels).

    ``rt`` is the red-interpolated table of an ``n``-node table, ``(n, n, 256, 3)`` ``[b, g, code, c]``
    flattened; ``rows`` ``(2, 256)`` int64 the offset in ``rt`` of each green and blue code's cell;
    ``frac`` ``(2, 256)`` float64 each green and blue code's fraction in its cell. All C-contiguous.
    ``parallel`` splits the pixels into one run per core, each in its own thread; otherwise the calling
    thread grades them all.
    """
    count = pixels.shape[0]
    arrays_fit = (
        pixels.ndim == out.ndim == 2 and pixels.shape[1] == 3 and out.shape[0] == count and out.shape[1] in (3, 4)
        and pixels.dtype == out.dtype == np.uint8 and rt.dtype == frac.dtype == np.float64 and rows.dtype == np.int64
        and rt.size == n * n * CODES * 3 and rows.shape == frac.shape == (2, CODES)
        and all(array.flags.c_contiguous for array in (pixels, out, rt, rows, frac))
    )
    if not arrays_fit:
        raise ValueError("grade_red_lerped: arrays of the wrong type, shape or layout")
    grade = _compiled()

    def run(first: int, stop: int) -> None:
        grade(pixels.ctypes.data, out.ctypes.data, first, stop, out.shape[1], rt.ctypes.data, rows.ctypes.data,
              frac.ctypes.data, n, 255.0, strength)

    *others, own = _chunks(count, available_cores() if parallel else 1)
    threads = [threading.Thread(target=run, args=chunk, name="lutgen-grade") for chunk in others]
    for thread in threads:
        thread.start()
    run(*own)  # the calling thread takes the last run
    for thread in threads:
        thread.join()


def _chunks(count: int, parts: int) -> list[tuple[int, int]]:
    """``[first, stop)`` ranges splitting ``range(count)`` into at most ``parts`` runs of nearly equal length."""
    parts = max(1, min(parts, count))
    bounds = [count * i // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts)]


# --------------------------------------------------------------------------------------------
# The kernel's IR
# --------------------------------------------------------------------------------------------


def kernel_ir() -> str:
    """The LLVM IR of ``void grade(u8* pixels, u8* out, i64 first, i64 stop, i64 out_channels, double* rt,
    i64* rows, double* frac, i64 n, double maxv, double strength)``, unoptimised.

    It grades pixels ``first`` to ``stop - 1`` (see :func:`grade_red_lerped`); ``out_channels`` is 3 or 4,
    ``maxv`` 255. The test ``strength != 1`` is made once, before two copies of the loop (without and
    with the blend).
    """
    from llvmlite import ir

    i8, i64, f64 = ir.IntType(8), ir.IntType(64), ir.DoubleType()
    module = ir.Module(name="lutgen_grade_8bit")
    signature = ir.FunctionType(ir.VoidType(), [i8.as_pointer(), i8.as_pointer(), i64, i64, i64, f64.as_pointer(),
                                                i64.as_pointer(), f64.as_pointer(), i64, f64, f64])
    function = ir.Function(module, signature, name=_NAME)
    for argument, name in zip(function.args, _ARGUMENTS, strict=True):
        argument.name = name
        if isinstance(argument.type, ir.PointerType):
            argument.add_attribute("noalias")  # every array is its own, and out never overlaps pixels
    a = dict(zip(_ARGUMENTS, function.args, strict=True))

    entry = function.append_basic_block("entry")
    plain = function.append_basic_block("plain")
    blended = function.append_basic_block("blended")
    done = function.append_basic_block("done")
    builder = ir.IRBuilder(entry)
    constants = {
        "sg": ir.Constant(i64, 3 * CODES),  # one green step in rt
        "sb": builder.mul(a["n"], ir.Constant(i64, 3 * CODES), name="sb"),  # one blue step
        "scale": builder.fdiv(ir.Constant(f64, 1.0), a["maxv"], name="scale", flags=_FLAGS),
        "keep": builder.fsub(ir.Constant(f64, 1.0), a["strength"], name="keep", flags=_FLAGS),
    }
    is_blended = builder.fcmp_unordered("!=", a["strength"], ir.Constant(f64, 1.0), name="is_blended")
    builder.cbranch(is_blended, blended, plain)
    for block, blend in ((plain, False), (blended, True)):
        builder.position_at_end(block)
        _emit_loop(builder, function, a, constants, blend, done)
    builder.position_at_end(done)
    builder.ret_void()
    return str(module)


def _emit_loop(builder, function, a: dict, constants: dict, blend: bool, done) -> None:
    """``for p in range(first, stop)``: one pixel per iteration (:func:`_emit_pixel`), then branch to ``done``."""
    from llvmlite import ir

    i64 = ir.IntType(64)
    suffix = "_blended" if blend else ""
    start = builder.block
    body = function.append_basic_block("pixel" + suffix)
    builder.cbranch(builder.icmp_signed("<", a["first"], a["stop"]), body, done)
    builder.position_at_end(body)
    p = builder.phi(i64, name="p")
    p.add_incoming(a["first"], start)
    _emit_pixel(builder, a, constants, p, blend)
    following = builder.add(p, ir.Constant(i64, 1), name="next")
    p.add_incoming(following, builder.block)
    builder.cbranch(builder.icmp_signed("<", following, a["stop"]), body, done)


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

    def load(pointer, index, name):
        return builder.load(builder.gep(pointer, [index], inbounds=True), name=name)

    def mix(x, y, f, g):
        return builder.fadd(builder.fmul(g, x, flags=_FLAGS), builder.fmul(f, y, flags=_FLAGS), flags=_FLAGS)

    base = builder.mul(p, const(3))
    codes = [builder.zext(load(a["pixels"], builder.add(base, const(c)), "rgb"[c]), i64) for c in range(3)]
    r, g, b = codes
    k = builder.add(builder.add(builder.mul(r, const(3)), load(a["rows"], g, "row_g")),
                    load(a["rows"], builder.add(b, const(CODES)), "row_b"), name="k")
    fg = load(a["frac"], g, "fg")
    fb = load(a["frac"], builder.add(b, const(CODES)), "fb")
    one = ir.Constant(f64, 1.0)
    gg = builder.fsub(one, fg, name="gg", flags=_FLAGS)
    gb = builder.fsub(one, fb, name="gb", flags=_FLAGS)
    sg, sb = constants["sg"], constants["sb"]
    maxv, zero = a["maxv"], ir.Constant(f64, 0.0)
    target = builder.mul(p, a["out_channels"])
    for c in range(3):
        q = builder.add(k, const(c))
        corner = [load(a["rt"], offset, f"t{c}") for offset in
                  (q, builder.add(q, sg), builder.add(q, sb), builder.add(builder.add(q, sg), sb))]
        y = mix(mix(corner[0], corner[1], fg, gg), mix(corner[2], corner[3], fg, gg), fb, gb)
        if blend:
            x = builder.fmul(builder.uitofp(codes[c], f64), constants["scale"], flags=_FLAGS)
            y = mix(x, y, a["strength"], constants["keep"])
        v = builder.fmul(y, maxv, flags=_FLAGS)
        v = builder.select(builder.fcmp_ordered(">", v, zero), v, zero)
        v = builder.select(builder.fcmp_ordered("<", v, maxv), v, maxv)
        code = builder.fptosi(builder.fadd(v, ir.Constant(f64, 0.5), flags=_FLAGS), i64)
        builder.store(builder.trunc(code, i8), builder.gep(a["out"], [builder.add(target, const(c))], inbounds=True))


# --------------------------------------------------------------------------------------------
# Compiling, caching, calling
# --------------------------------------------------------------------------------------------

_SIGNATURE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                              ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_double,
                              ctypes.c_double)
_lock = threading.Lock()
_kernel = None  # the ctypes function, once compiled
_keep_alive: tuple = ()  # the execution engine and target machine that own the machine code


def _compiled():
    """The kernel as a ctypes function, compiled (or loaded from the disk cache) on the first call."""
    global _kernel, _keep_alive
    if _kernel is None:
        with _lock:
            if _kernel is None:
                function, *_keep_alive = _compile()
                _kernel = function
    return _kernel


def _compile():
    """Compile :func:`kernel_ir` for this machine: the ctypes function, and the objects that must outlive it."""
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
        builder = llvm.create_pass_builder(machine, options)
        builder.getModulePassManager().run(module, builder)
    engine = llvm.create_mcjit_compiler(module, machine)
    engine.set_object_cache(lambda _module, buffer: _write(cached, buffer), lambda _module: code)
    engine.finalize_object()
    return _SIGNATURE(engine.get_function_address(_NAME)), engine, machine


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
    """Keep ``code`` in ``path`` (see :func:`_read`), atomically: written to a temporary file renamed over it.

    Failing to write only costs the next process the compilation.
    """
    if path is None:
        return
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(hashlib.sha256(code).digest() + code)
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
