package main

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// Linux's TUN interface (include/uapi/linux/if_tun.h): TUNSETIFF creates
// the device; IFF_TUN carries IP packets, and IFF_NO_PI leaves out the
// 4-byte packet information header, so each read and write is one bare
// packet.
const (
	tunSetIff = 0x400454ca
	iffTun    = 0x0001
	iffNoPi   = 0x1000
)

// ifreq is struct ifreq of the TUNSETIFF call: the name, then the flags in
// the union that fills the rest of its 40 bytes.
type ifreq struct {
	name  [16]byte
	flags uint16
	_     [22]byte
}

// openTUN creates the TUN device name and returns it open for packets.
// The device goes away when the file is closed.
func openTUN(name string) (*os.File, error) {
	if len(name) == 0 || len(name) > 15 {
		return nil, fmt.Errorf("TUN device name %q: use 1 to 15 characters", name)
	}
	fd, err := syscall.Open("/dev/net/tun", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	var req ifreq
	copy(req.name[:], name)
	req.flags = iffTun | iffNoPi
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), tunSetIff, uintptr(unsafe.Pointer(&req))); errno != 0 {
		syscall.Close(fd)
		return nil, fmt.Errorf("create TUN device %s: %w", name, errno)
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+name), nil
}
