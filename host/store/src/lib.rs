//! dvhost's store (work in progress).
