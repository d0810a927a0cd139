// stemforge_mixer: StemSeparator.process_block's one call per block into the engine, as a
// CPython extension type (built beside the engine by `python build.py plugin`, for the Python
// that ran it; stemforge.core.native loads it from the bundle).
//
// Why not ctypes: between two blocks' sleeps every step of the interpreter runs with cold caches,
// and ctypes converts each of sf_engine_process_mixed's 12 arguments on every call. On a 2-core
// AMD EPYC VM process_block's p99 went from 0.17-0.22 ms a block through ctypes to 0.08-0.12 ms
// through this, below the bare ctypes call's 0.11-0.18 ms (docs/performance.md; issue 22 asks for
// the audio thread's p99 within 30 % of the model's call, 0.39 ms there).
//
// It links neither the engine nor libtorch: NativeEngine hands it sf_engine_process_mixed's
// address (EngineApi.h's type) and the engine, and closes it before it frees the engine.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstring>

#include "EngineApi.h"

namespace {

// plain data, zeroed by tp_alloc (no constructor runs)
struct Mixer {
    PyObject ob_base;  // PyObject_HEAD
    vectorcallfunc vectorcall;
    sf_engine_process_mixed_fn process;
    sf_engine* engine;  // null until set up and once closed
    PyObject* gains;    // float32, one per stem, kept alive: the engine reads it
    const float* gainsAt;
    float direct;
    int channels, maxBlock;
    double rate;
    PyObject* ndarray;  // numpy.ndarray: blocks of that exact class only
    PyObject* empty;    // numpy.empty, for each block's output
    PyObject* float32;  // numpy.dtype("float32")
    PyObject* acquire;  // the StemSeparator's lock's, for one thread at a time in its stream
    PyObject* release;
    PyObject* busy;  // what to say when another thread holds that lock
    char err[SF_ERROR_CHARS];
};

// The engine's call into a new float32 array of the block's shape: the array, None for input
// with NaN or Inf, or an exception.
PyObject* mix(Mixer* m, const Py_buffer& in, bool channelsFirst, Py_ssize_t rows, Py_ssize_t cols, int n,
              long long channelStride, long long sampleStride) {
    PyObject* out = nullptr;
    if (PyObject* shape = Py_BuildValue("(nn)", rows, cols)) {
        PyObject* emptyArgs[2] = {shape, m->float32};
        out = PyObject_Vectorcall(m->empty, emptyArgs, 2, nullptr);
        Py_DECREF(shape);
    }
    Py_buffer o;
    if (out == nullptr || PyObject_GetBuffer(out, &o, PyBUF_STRIDES | PyBUF_WRITABLE) != 0) {
        Py_XDECREF(out);
        return nullptr;
    }
    const long long outChannel = (channelsFirst ? o.strides[0] : o.strides[1]) / 4;
    const long long outSample = (channelsFirst ? o.strides[1] : o.strides[0]) / 4;
    // The GIL stays held: the call is short and never waits, and taking the GIL back after it
    // could wait for another Python thread's whole switch interval (5 ms) on the audio thread.
    const int code =
        m->process(m->engine, static_cast<const float*>(in.buf), channelStride, sampleStride, n, m->gainsAt, m->direct,
                   static_cast<float*>(o.buf), outChannel, outSample, m->err, sizeof(m->err));
    PyBuffer_Release(&o);
    if (code == 0) return out;
    Py_DECREF(out);
    if (code == SF_NOT_FINITE) Py_RETURN_NONE;  // the general path says what is wrong
    PyErr_SetString(PyExc_RuntimeError, m->err);
    return nullptr;
}

// A block the engine can take as it is: a float32 numpy array of 2 dimensions, channels along
// one of them (a square block's layout is the stream's to say: not here), 1 to maxBlock samples
// along the other, strides in whole floats. Otherwise None, and process_block's general path
// takes it (and says what is wrong with it, if anything).
PyObject* mixerCall(PyObject* self, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
    Mixer* m = reinterpret_cast<Mixer*>(self);
    if (PyVectorcall_NARGS(nargsf) != 2 || kwnames != nullptr) {
        PyErr_SetString(PyExc_TypeError, "a mixer takes (block, sample_rate)");
        return nullptr;
    }
    PyObject *block = args[0], *rate = args[1];
    if (reinterpret_cast<PyObject*>(Py_TYPE(block)) != m->ndarray) Py_RETURN_NONE;
    const double r = PyFloat_AsDouble(rate);
    if (r == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (r != m->rate) Py_RETURN_NONE;
    Py_buffer in;
    if (PyObject_GetBuffer(block, &in, PyBUF_STRIDES | PyBUF_FORMAT) != 0) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    const char* f = in.format ? in.format : "B";
    if (*f == '<' || *f == '=' || *f == '@') ++f;
    const Py_ssize_t rows = in.ndim == 2 ? in.shape[0] : 0, cols = in.ndim == 2 ? in.shape[1] : 0;
    const bool fits = in.ndim == 2 && in.itemsize == 4 && std::strcmp(f, "f") == 0 && rows != cols
                      && (in.strides[0] % 4) == 0 && (in.strides[1] % 4) == 0;
    const bool channelsFirst = fits && rows == m->channels && cols > 0 && cols <= m->maxBlock;
    const bool channelsLast = fits && cols == m->channels && rows > 0 && rows <= m->maxBlock;
    if (!channelsFirst && !channelsLast) {
        PyBuffer_Release(&in);
        Py_RETURN_NONE;
    }
    const int n = int(channelsFirst ? cols : rows);
    const long long channelStride = (channelsFirst ? in.strides[0] : in.strides[1]) / 4;
    const long long sampleStride = (channelsFirst ? in.strides[1] : in.strides[0]) / 4;
    if (m->engine == nullptr) {
        PyBuffer_Release(&in);
        PyErr_SetString(PyExc_RuntimeError, "internal error: the engine was closed");
        return nullptr;
    }
    // Another thread inside a call of the same StemSeparator (its reset, say) would have the
    // engine's stream under it: refused, as its other calls are. The GIL is held from here to the
    // release, so the lock is only ever seen held by a thread that let the GIL go inside it.
    PyObject* noWait[1] = {Py_False};
    PyObject* got = PyObject_Vectorcall(m->acquire, noWait, 1, nullptr);
    if (got == nullptr || got != Py_True) {
        Py_XDECREF(got);
        PyBuffer_Release(&in);
        if (!PyErr_Occurred()) PyErr_SetObject(PyExc_RuntimeError, m->busy);
        return nullptr;
    }
    Py_DECREF(got);
    PyObject* out = mix(m, in, channelsFirst, rows, cols, n, channelStride, sampleStride);
    PyBuffer_Release(&in);
    PyObject* released = PyObject_Vectorcall(m->release, nullptr, 0, nullptr);
    if (released == nullptr) {
        Py_XDECREF(out);
        return nullptr;
    }
    Py_DECREF(released);
    return out;
}

PyObject* mixerNew(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
    PyObject* self = PyType_GenericNew(type, args, kwargs);
    if (self != nullptr) reinterpret_cast<Mixer*>(self)->vectorcall = mixerCall;  // raises until set up
    return self;
}

// Mixer(process_address, engine_address, gains, direct, channels, max_block, rate, ndarray, empty,
//       float32, lock, busy_message)
int mixerInit(PyObject* self, PyObject* args, PyObject* kwargs) {
    Mixer* m = reinterpret_cast<Mixer*>(self);
    unsigned long long process = 0, engine = 0;
    PyObject *gains = nullptr, *ndarray = nullptr, *empty = nullptr, *float32 = nullptr, *lock = nullptr,
             *busy = nullptr;
    double direct = 0.0, rate = 0.0;
    int channels = 0, maxBlock = 0;
    if (kwargs != nullptr && PyDict_Size(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "Mixer takes positional arguments only");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "KKOdiidOOOOU", &process, &engine, &gains, &direct, &channels, &maxBlock, &rate,
                          &ndarray, &empty, &float32, &lock, &busy))
        return -1;
    if (process == 0 || engine == 0 || channels < 1 || maxBlock < 1) {
        PyErr_SetString(PyExc_ValueError,
                        "internal error: a mixer needs the engine's function, an engine and its sizes");
        return -1;
    }
    Py_buffer g;
    if (PyObject_GetBuffer(gains, &g, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0) return -1;
    const bool floats =
        g.itemsize == 4 && g.format && (std::strcmp(g.format, "f") == 0 || std::strcmp(g.format, "<f") == 0);
    const float* at = static_cast<const float*>(g.buf);
    PyBuffer_Release(&g);  // the array itself is kept alive below, and it is never resized
    if (!floats) {
        PyErr_SetString(PyExc_ValueError, "internal error: a mixer's gains are float32");
        return -1;
    }
    PyObject* acquire = PyObject_GetAttrString(lock, "acquire");
    PyObject* release = acquire ? PyObject_GetAttrString(lock, "release") : nullptr;
    if (release == nullptr) {
        Py_XDECREF(acquire);
        return -1;
    }
    Py_XSETREF(m->acquire, acquire);
    Py_XSETREF(m->release, release);
    m->process = reinterpret_cast<sf_engine_process_mixed_fn>(static_cast<uintptr_t>(process));
    m->engine = reinterpret_cast<sf_engine*>(static_cast<uintptr_t>(engine));
    Py_INCREF(gains);
    Py_XSETREF(m->gains, gains);
    m->gainsAt = at;
    m->direct = float(direct);
    m->channels = channels, m->maxBlock = maxBlock, m->rate = rate;
    Py_INCREF(ndarray);
    Py_XSETREF(m->ndarray, ndarray);
    Py_INCREF(empty);
    Py_XSETREF(m->empty, empty);
    Py_INCREF(float32);
    Py_XSETREF(m->float32, float32);
    Py_INCREF(busy);
    Py_XSETREF(m->busy, busy);
    return 0;
}

PyObject* mixerClose(PyObject* self, PyObject*) {
    reinterpret_cast<Mixer*>(self)->engine = nullptr;
    Py_RETURN_NONE;
}

void mixerDealloc(PyObject* self) {
    Mixer* m = reinterpret_cast<Mixer*>(self);
    Py_XDECREF(m->gains);
    Py_XDECREF(m->ndarray);
    Py_XDECREF(m->empty);
    Py_XDECREF(m->float32);
    Py_XDECREF(m->acquire);
    Py_XDECREF(m->release);
    Py_XDECREF(m->busy);
    Py_TYPE(self)->tp_free(self);
}

PyMethodDef mixerMethods[] = {
    {"close", mixerClose, METH_NOARGS, "Forget the engine (before it is freed): later calls raise."},
    {nullptr, nullptr, 0, nullptr}};

PyTypeObject MixerType = {PyVarObject_HEAD_INIT(nullptr, 0)};

PyModuleDef mixerModule = {PyModuleDef_HEAD_INIT, "stemforge_mixer",
                           "StemSeparator.process_block's one call per block into the stemforge engine.", -1, nullptr};

}  // namespace

PyMODINIT_FUNC PyInit_stemforge_mixer(void) {
    MixerType.tp_name = "stemforge_mixer.Mixer";
    MixerType.tp_basicsize = sizeof(Mixer);
    MixerType.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL;
    MixerType.tp_doc =
        "mixer(block, sample_rate): direct * block + the weighted stems, delayed by the engine's "
        "latency; None for a block the engine cannot take as it is";
    MixerType.tp_new = mixerNew;
    MixerType.tp_init = mixerInit;
    MixerType.tp_dealloc = mixerDealloc;
    MixerType.tp_call = PyVectorcall_Call;
    MixerType.tp_vectorcall_offset = offsetof(Mixer, vectorcall);
    MixerType.tp_methods = mixerMethods;
    if (PyType_Ready(&MixerType) < 0) return nullptr;
    PyObject* module = PyModule_Create(&mixerModule);
    if (module == nullptr) return nullptr;
    Py_INCREF(&MixerType);
    if (PyModule_AddObject(module, "Mixer", reinterpret_cast<PyObject*>(&MixerType)) < 0) {
        Py_DECREF(&MixerType);
        Py_DECREF(module);
        return nullptr;
    }
    return module;
}
