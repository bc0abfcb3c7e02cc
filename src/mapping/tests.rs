//! Tests of request mapping.
