//! `roost._native`: the native core of owlette-sdk.

use pyo3::prelude::*;

/// Whether this CPU has hardware SHA-256 instructions (SHA-NI on x86-64, the SHA2
/// extension on ARMv8). Reported for diagnostics and benchmarks.
#[must_use]
pub fn cpu_has_sha_extensions() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sha")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("sha2")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

#[pyfunction]
fn cpu_features() -> Vec<(&'static str, bool)> {
    vec![("sha", cpu_has_sha_extensions())]
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(cpu_features, m)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn probe_does_not_panic() {
        let _ = super::cpu_has_sha_extensions();
    }
}
