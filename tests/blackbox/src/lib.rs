//! Nothing: this package only holds the black-box tests in
//! `tests/blackbox/`, which run the real `dvhost` binary.
