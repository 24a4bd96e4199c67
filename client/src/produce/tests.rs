//! Producer tests against a scripted in-process broker.
