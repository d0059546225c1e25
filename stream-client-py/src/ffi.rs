//! Record batches across the Arrow C data interface, through the Arrow
//! PyCapsule protocol (`__arrow_c_array__`): pyarrow ↔ arrow-rs without a
//! copy. The only `unsafe` code of the binding is here.
#![allow(unsafe_code)]

use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema, from_ffi};
use arrow_array::{Array, RecordBatch, StructArray};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

const SCHEMA: &std::ffi::CStr = c"arrow_schema";
const ARRAY: &std::ffi::CStr = c"arrow_array";

/// Imports a record batch (anything with `__arrow_c_array__` exporting a
/// struct array: a `pyarrow.RecordBatch`) without copying its buffers.
pub fn import_batch(obj: &Bound<'_, PyAny>) -> PyResult<RecordBatch> {
    if !obj.hasattr("__arrow_c_array__")? {
        let kind = obj.get_type().name()?;
        return Err(PyTypeError::new_err(format!(
            "expected an Arrow record batch (pyarrow.RecordBatch), got {kind}"
        )));
    }
    let (schema, array): (Bound<'_, PyCapsule>, Bound<'_, PyCapsule>) =
        obj.call_method0("__arrow_c_array__")?.extract()?;
    let schema_ptr = schema.pointer_checked(Some(SCHEMA))?.cast::<FFI_ArrowSchema>();
    let array_ptr = array.pointer_checked(Some(ARRAY))?.cast::<FFI_ArrowArray>();
    // SAFETY: both capsules are named as the PyCapsule protocol requires,
    // so they hold an ArrowSchema and an ArrowArray. `from_raw` moves the
    // array out and marks the capsule's copy released (its destructor then
    // does nothing); the schema is only borrowed while the capsule lives.
    let data = unsafe {
        let array = FFI_ArrowArray::from_raw(array_ptr.as_ptr());
        from_ffi(array, schema_ptr.as_ref())
    }
    .map_err(|e| PyValueError::new_err(format!("cannot import the Arrow batch: {e}")))?;
    let data_type = data.data_type().clone();
    if !matches!(data_type, arrow_schema::DataType::Struct(_)) {
        return Err(PyTypeError::new_err(format!(
            "expected a record batch (an Arrow struct), got an array of {data_type}"
        )));
    }
    let array = StructArray::from(data);
    if array.null_count() > 0 {
        return Err(PyValueError::new_err("a record batch cannot have null rows"));
    }
    Ok(RecordBatch::from(array))
}

/// A record batch handed to Python: `pyarrow.record_batch(obj)` imports it
/// without a copy through `__arrow_c_array__`.
#[pyclass(frozen, module = "stream_client._native")]
pub struct ArrowBatch {
    batch: RecordBatch,
}

impl ArrowBatch {
    /// Wraps `batch` for export.
    pub fn new(batch: RecordBatch) -> Self {
        ArrowBatch { batch }
    }
}

#[pymethods]
impl ArrowBatch {
    /// The Arrow PyCapsule protocol: (schema capsule, array capsule) of the
    /// batch as a struct array. `requested_schema` is ignored (the schema is
    /// fixed); pyarrow casts if it must.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_array__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<(Bound<'py, PyCapsule>, Bound<'py, PyCapsule>)> {
        let _ = requested_schema;
        let data = StructArray::from(self.batch.clone()).into_data();
        let schema = FFI_ArrowSchema::try_from(data.data_type())
            .map_err(|e| PyValueError::new_err(format!("cannot export the Arrow schema: {e}")))?;
        // Safe: pyarrow moves the structs out of the capsules (leaving them
        // released); the capsules' destructors drop whatever is left.
        let schema = PyCapsule::new_with_value(py, schema, SCHEMA)?;
        let array = PyCapsule::new_with_value(py, FFI_ArrowArray::new(&data), ARRAY)?;
        Ok((schema, array))
    }

    /// Rows in the batch.
    fn __len__(&self) -> usize {
        self.batch.num_rows()
    }
}
