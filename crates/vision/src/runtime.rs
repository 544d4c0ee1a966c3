use std::path::Path;
use std::sync::Mutex;

use ort::environment::Environment;

use crate::VisionError;

/// ONNX Runtime allows one environment per process; every pipeline shares it.
static ENVIRONMENT: Mutex<Option<Environment>> = Mutex::new(None);

/// Loads the ONNX Runtime shared library from `library` (once per process)
/// and returns the process-wide environment.
pub fn init_runtime(library: &Path) -> Result<Environment, VisionError> {
    let mut slot = ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(env) = slot.as_ref() {
        return Ok(env.clone());
    }
    let load_err = |source| VisionError::RuntimeLoad { path: library.to_owned(), source };
    let env = ort::init_from(library)
        .map_err(load_err)?
        .with_name("facerec")
        .build()
        .map_err(|source| VisionError::ModelLoad { path: library.to_owned(), source })?;
    *slot = Some(env.clone());
    Ok(env)
}
