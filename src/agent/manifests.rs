//! `gitship agent manifests ENV --image REF`. STUB: being written by a helper.
