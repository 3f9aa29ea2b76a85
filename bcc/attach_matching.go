package bcc

// AttachMatchingUprobesFuncs is AttachMatchingUprobes returning the names
// of the functions it attached to, in the binary's symbol order; of
// several names of one address (aliases) only the first is attached and
// listed.
func (m *Module) AttachMatchingUprobesFuncs(name, match string, fd, pid int) ([]string, error) {
	return m.attachMatchingList(BPF_PROBE_ENTRY, name, match, fd, pid)
}

// AttachMatchingUretprobesFuncs is AttachMatchingUprobesFuncs for the
// functions' returns.
func (m *Module) AttachMatchingUretprobesFuncs(name, match string, fd, pid int) ([]string, error) {
	return m.attachMatchingList(BPF_PROBE_RETURN, name, match, fd, pid)
}
