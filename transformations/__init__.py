"""Pure DataFrame -> DataFrame functions per layer. No I/O: jobs read and write, these only transform."""
