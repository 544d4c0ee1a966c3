use std::path::Path;
use std::sync::Mutex;

use ort::environment::Environment;
use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};

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

/// A session builder with a fixed intra-op thread count. Sequential execution
/// and full graph optimisation: deterministic and fastest for these small models.
fn session_builder(env: &Environment, path: &Path, threads: usize) -> Result<SessionBuilder, VisionError> {
    let err = |source| VisionError::ModelLoad { path: path.to_owned(), source };
    Session::builder(env)
        .map_err(err)?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| err(e.into()))?
        .with_intra_threads(threads.max(1))
        .map_err(|e| err(e.into()))
}

/// Opens an ONNX model with a fixed intra-op thread count (see [`session_builder`]).
pub(crate) fn load_session(env: &Environment, path: &Path, threads: usize) -> Result<Session, VisionError> {
    let err = |source| VisionError::ModelLoad { path: path.to_owned(), source };
    session_builder(env, path, threads)?.commit_from_file(path).map_err(err)
}

/// As [`load_session`], for a model whose input size changes with every run
/// (a detector at each photo's or crop's own size): without ONNX Runtime's
/// memory arena and memory patterns, which keep the largest size's buffers
/// (and a block per size seen) for the life of the session.
pub(crate) fn load_session_for_varying_sizes(
    env: &Environment,
    path: &Path,
    threads: usize,
) -> Result<Session, VisionError> {
    let err = |source| VisionError::ModelLoad { path: path.to_owned(), source };
    let heap = MemoryInfo::new(AllocationDevice::CPU, 0, AllocatorType::Device, MemoryType::Default).map_err(err)?;
    session_builder(env, path, threads)?
        .with_memory_pattern(false)
        .map_err(|e| err(e.into()))?
        .with_allocator(heap)
        .map_err(|e| err(e.into()))?
        .commit_from_file(path)
        .map_err(err)
}
