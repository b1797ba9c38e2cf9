//! DLPack export: a buffer handed to another library (torch, CuPy, numpy) as a
//! `DLManagedTensor` inside a `PyCapsule` named `"dltensor"`, as the DLPack specification
//! sets out (the unversioned ABI, which every consumer takes). The only unsafe code of this
//! crate; tested by `tests/test_device.py` through a host buffer (`_DlpackProbe`).
//!
//! Ownership: the tensor holds a reference to the Python object that owns the memory. A
//! consumer renames the capsule `"used_dltensor"` and calls the tensor's deleter when done;
//! a capsule never consumed frees the tensor when it is collected.

use std::ffi::{CStr, c_void};
use std::ptr;

use pyo3::ffi;
use pyo3::prelude::*;

const NAME: &CStr = c"dltensor";

/// `DLDevice`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Device {
    /// `kDLCPU` = 1, `kDLCUDA` = 2.
    pub device_type: i32,
    pub device_id: i32,
}

/// `kDLCPU`.
pub const CPU: i32 = 1;
/// `kDLCUDA`.
pub const CUDA: i32 = 2;

/// `DLDataType`: type code (`kDLInt` 0, `kDLUInt` 1, `kDLFloat` 2, `kDLBool` 6), bits, lanes.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct DataType {
    pub code: u8,
    pub bits: u8,
    pub lanes: u16,
}

#[repr(C)]
struct Tensor {
    data: *mut c_void,
    device: Device,
    ndim: i32,
    dtype: DataType,
    shape: *mut i64,
    /// Null: C order.
    strides: *mut i64,
    byte_offset: u64,
}

#[repr(C)]
struct ManagedTensor {
    tensor: Tensor,
    manager_ctx: *mut c_void,
    deleter: Option<unsafe extern "C" fn(*mut ManagedTensor)>,
}

/// What a tensor keeps alive: the owner of its memory and its shape array.
struct Context {
    _owner: Py<PyAny>,
    shape: Vec<i64>,
}

/// A new `"dltensor"` capsule over `len`-element C-order memory at `data`, owned by `owner`
/// (kept alive until the consumer is done).
pub fn capsule<'py>(
    py: Python<'py>,
    owner: Py<PyAny>,
    data: u64,
    device: Device,
    dtype: DataType,
    shape: &[u64],
) -> PyResult<Bound<'py, PyAny>> {
    let shape: Vec<i64> = shape.iter().map(|&n| i64::try_from(n).unwrap_or(i64::MAX)).collect();
    let mut context = Box::new(Context { _owner: owner, shape });
    let tensor = Tensor {
        data: data as *mut c_void,
        device,
        ndim: i32::try_from(context.shape.len()).unwrap_or(i32::MAX),
        dtype,
        shape: context.shape.as_mut_ptr(),
        strides: ptr::null_mut(),
        byte_offset: 0,
    };
    let managed = Box::into_raw(Box::new(ManagedTensor {
        tensor,
        manager_ctx: Box::into_raw(context).cast(),
        deleter: Some(delete_managed),
    }));
    // SAFETY: `managed` is a valid heap pointer and NAME a static C string; the capsule
    // destructor below frees `managed` only while the capsule still has that name.
    let capsule = unsafe { ffi::PyCapsule_New(managed.cast(), NAME.as_ptr(), Some(drop_unconsumed)) };
    if capsule.is_null() {
        // SAFETY: the capsule was not made, so `managed` is still ours alone.
        unsafe { delete_managed(managed) };
        return Err(PyErr::fetch(py));
    }
    // SAFETY: PyCapsule_New returned a new (owned) reference.
    Ok(unsafe { Bound::from_owned_ptr(py, capsule) })
}

/// The tensor's deleter: frees it and releases the owner (under the GIL, taken here, since
/// a consumer may call this from any thread). While the interpreter is shutting down the
/// owner is leaked instead: nothing can be released then, and panicking here would abort.
///
/// # Safety
/// `managed` comes from [`capsule`] and is deleted once.
unsafe extern "C" fn delete_managed(managed: *mut ManagedTensor) {
    // SAFETY: made by Box::into_raw in `capsule`, deleted once (the caller's contract).
    let managed = unsafe { Box::from_raw(managed) };
    // SAFETY: likewise for the context.
    let context = unsafe { Box::from_raw(managed.manager_ctx.cast::<Context>()) };
    let context = std::mem::ManuallyDrop::new(context);
    // Not attached (shutting down): the closure is dropped uncalled and the context leaks.
    let _ = Python::try_attach(move |_| drop(std::mem::ManuallyDrop::into_inner(context)));
}

/// The capsule's destructor: frees the tensor if no consumer took it.
///
/// # Safety
/// Called by Python with the capsule being destroyed.
unsafe extern "C" fn drop_unconsumed(capsule: *mut ffi::PyObject) {
    // SAFETY: `capsule` is a live capsule; IsValid only reads its name.
    if unsafe { ffi::PyCapsule_IsValid(capsule, NAME.as_ptr()) } == 1 {
        // SAFETY: still named "dltensor": nobody consumed it, its pointer is our tensor.
        let managed = unsafe { ffi::PyCapsule_GetPointer(capsule, NAME.as_ptr()) }.cast::<ManagedTensor>();
        // SAFETY: unconsumed, so not deleted yet.
        unsafe { delete_managed(managed) };
    }
}
