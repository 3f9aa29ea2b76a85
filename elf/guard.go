package elf

import "fmt"

// The fd guard. A module's maps, programs and perf events are file
// descriptors that Close closes; the kernel hands the freed numbers to the
// next object opened, maybe another module's map. An operation that read
// an fd just before Close and made its system call just after would act on
// that other object. So every operation that uses one of the module's fds
// holds the module's lock (Module.mu, an RWMutex) from the check that the
// module is open until its last system call on the fd: shared for map
// operations and getters, exclusive for Load, Close and what attaches or
// detaches. Close takes it exclusively, so it waits for the operations in
// flight; those that start later return an error wrapping ErrClosed.
//
// Lock order: Module.mu before PerfMap.mu. Nothing that holds Module.mu
// calls a method that takes it again (RWMutex is not reentrant).

// get returns m[name] under the module's lock (nil when absent).
func get[V any](b *Module, m *map[string]*V, name string) *V {
	if b == nil {
		return nil
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	return (*m)[name]
}

// rlockOpen takes b's lock shared and checks that b is open. On success
// the caller must call b.mu.RUnlock. what and name say what the caller was
// doing, for the error (they are only formatted on failure).
func (b *Module) rlockOpen(what, name string) error {
	if b == nil {
		return guardErr(what, name, "nil module", ErrNotLoaded)
	}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return guardErr(what, name, "", ErrClosed)
	}
	return nil
}

// lockOpen is rlockOpen, exclusive: the caller must call b.mu.Unlock.
func (b *Module) lockOpen(what, name string) error {
	if b == nil {
		return guardErr(what, name, "nil module", ErrNotLoaded)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return guardErr(what, name, "", ErrClosed)
	}
	return nil
}

func guardErr(what, name, why string, err error) error {
	if name != "" {
		what += " " + name
	}
	if why != "" {
		what += ": " + why
	}
	return fmt.Errorf("elf: %s: %w", what, err)
}

// acquire starts an operation on mp's fd: it returns the fd with the
// module's lock held shared (release with mp.release), or an error
// (ErrClosed once the module's Close began or a failed Load closed the
// map) with nothing held.
func (mp *Map) acquire() (int, error) {
	if mp == nil {
		return -1, fmt.Errorf("elf: nil map: %w", ErrNotFound)
	}
	if mp.module == nil {
		return -1, fmt.Errorf("elf: map %q belongs to no module: %w", mp.Name, ErrNotFound)
	}
	if err := mp.module.rlockOpen("map", mp.Name); err != nil {
		return -1, err
	}
	if mp.fd < 0 {
		mp.module.mu.RUnlock()
		return -1, fmt.Errorf("elf: map %q: %w", mp.Name, ErrClosed)
	}
	return mp.fd, nil
}

func (mp *Map) release() { mp.module.mu.RUnlock() }

// acquire is Map.acquire for a program's fd.
func (p *program) acquire(kind string) (int, error) {
	if p == nil {
		return -1, fmt.Errorf("elf: nil %s: %w", kind, ErrNotFound)
	}
	if p.mod == nil {
		return -1, fmt.Errorf("elf: %s %q belongs to no module: %w", kind, p.Name, ErrNotFound)
	}
	if err := p.mod.rlockOpen(kind, p.Name); err != nil {
		return -1, err
	}
	if p.fd < 0 {
		p.mod.mu.RUnlock()
		return -1, fmt.Errorf("elf: %s %q: %w", kind, p.Name, ErrClosed)
	}
	return p.fd, nil
}

func (p *program) release() { p.mod.mu.RUnlock() }
