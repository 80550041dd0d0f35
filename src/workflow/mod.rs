//! Workflow YAML → typed model in which every value knows its line and column; validation and load
//! errors with file:line:col. Parses (never evaluates) the expressions it contains.
