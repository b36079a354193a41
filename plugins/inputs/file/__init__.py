"""The `file` input, one job per module; its options and examples are in README.md.

- `input`: the plugin (`FileInput`): discovery, reading, acknowledgements, checkpoints.
- `config`: the options (`FileInputConfig`, `MultilineConfig`).
- `globs`: include / exclude patterns with `**`, and the directory walk that applies them.
- `codec`: encodings (newline bytes, BOMs, byte order) and decoding that counts invalid bytes.
- `lines`: a file's byte stream cut into complete lines, over-long lines truncated.
- `multiline`: lines joined into records (stack traces) by a start or continuation pattern.
- `identity`: device + inode + fingerprint of the first bytes.
- `checkpoints`: the per-input checkpoint file (what was acknowledged, per file identity).
- `tailed`: one watched file: descriptor, positions, acknowledgements, lines to records.
- `files`: the set of watched files: discovery, rotation, truncation, descriptor cap.
- `restore`: start-up: the checkpoint matched against the files as they are now.
- `search`: finding a renamed file by inode, or a copytruncate copy by fingerprint, in one directory.
- `watcher`: filesystem events (watchdog) bridged to the event loop.
- `status`: `collector status files`.
- `line_formats`, `container_formats`: raw lines of one source to records (`format: docker`, `cri`).
"""
