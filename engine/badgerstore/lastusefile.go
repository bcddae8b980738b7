package badgerstore

import (
	"bufio"
	"cmp"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/sessiond/sessiond/engine/memstore"
)

// The last-use log lives in files of its own, next to Badger's, in <Dir>/lastuse. It is
// written sequentially and deleted whole, which Badger's tables did badly: every snapshot of
// a million sessions' times (about 45 MB) went through Badger's memtables, table builders
// and compactions, which took about 15 % of the server's CPU in bursts and 140 MB of memory
// while they ran, and Badger's value log cannot serve instead (it reclaims space only from
// what compactions report, and pointers alone never set one off).
//
// A file is named <generation>-<segment>.log, both as 16 hex digits. It begins with
// lastUseMagic and a byte saying whether its records are encrypted, then holds records: the
// length of the body (4 bytes, little-endian), the CRC-32C of the body (4 bytes), and the
// body: a chunk of last-use times (appendLastUses), or with encryption a random 12-byte
// nonce and the chunk sealed with AES-GCM under a key derived from the store's key. Each
// open of the store writes a new segment, and a segment whose write failed is not written
// again, so only the end of a file can be damaged: a crash while writing it. Load stops
// reading a file at a record that is incomplete, empty (zeros) or fails its checksum (the
// times in it are at most one flush interval old, and older times only make sessions end
// sooner), and Open truncates the file there.

const (
	lastUseDirName = "lastuse"
	lastUseMagic   = "sessiond-lastuse-1\n"
	lastUseHeader  = len(lastUseMagic) + 1 // the magic, then 0 (plain) or 1 (encrypted)
	recordHeader   = 8                     // body length and CRC-32C
	// maxRecordBody bounds a record's body: a chunk of at most maxChunkEntries entries, each
	// an id and two times (a few dozen bytes with the engine's ids), and fewer when they
	// would not fit.
	maxRecordBody = 4 << 20
	// maxSealOverhead is what encryption adds to a chunk: a nonce and an AES-GCM tag.
	maxSealOverhead = 12 + 16
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// lastUseFile is a file of the log found at open.
type lastUseFile struct {
	path                string
	generation, segment uint64
}

// lastUseFiles writes the log's files. It is used under Store.flushMu.
type lastUseFiles struct {
	dir  string
	aead cipher.AEAD // nil when the store is not encrypted
	f    *os.File    // the segment being written, nil until the next write
	w    *bufio.Writer
	// generation and segment name f, or the file the next write creates.
	generation, segment uint64
	chunk, body         []byte // scratch
	dirSynced           bool   // the store directory was synced since dir was made
}

// newLastUseFiles prepares the log of the store in storeDir; key is the store's encryption
// key, or nil.
func newLastUseFiles(storeDir string, key []byte) (*lastUseFiles, error) {
	l := &lastUseFiles{dir: filepath.Join(storeDir, lastUseDirName)}
	if len(key) == 0 {
		return l, nil
	}
	// A key of its own, so that the store's key is never used by two ciphers.
	fileKey, err := hkdf.Key(sha256.New, key, nil, "sessiond badgerstore last-use log", len(key))
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(fileKey)
	if err != nil {
		return nil, err
	}
	if l.aead, err = cipher.NewGCM(block); err != nil {
		return nil, err
	}
	return l, nil
}

// write appends touched to the current segment, in chunks of up to maxChunkEntries, creating
// the segment first if needed. The records reach the disk at sync.
func (l *lastUseFiles) write(touched []memstore.Touched) error {
	if l.f == nil {
		if err := l.create(); err != nil {
			return err
		}
	}
	for len(touched) > 0 {
		// At most maxChunkEntries a chunk, and fewer when their ids are long: load refuses a
		// record over maxRecordBody as damaged.
		n := min(len(touched), maxChunkEntries)
		for {
			l.chunk = appendLastUses(l.chunk[:0], touched[:n])
			if len(l.chunk)+maxSealOverhead <= maxRecordBody {
				break
			}
			if n == 1 {
				return fmt.Errorf("badgerstore: the last-use entry of session %.40q… is over %d bytes", touched[0].ID, maxRecordBody)
			}
			n /= 2
		}
		touched = touched[n:]
		body := l.chunk
		if l.aead != nil {
			l.body = slices.Grow(l.body[:0], l.aead.NonceSize()+len(l.chunk)+l.aead.Overhead())
			nonce := l.body[:l.aead.NonceSize()]
			rand.Read(nonce)
			body = l.aead.Seal(nonce, nonce, l.chunk, nil)
		}
		var header [recordHeader]byte
		binary.LittleEndian.PutUint32(header[:4], uint32(len(body)))
		binary.LittleEndian.PutUint32(header[4:], crc32.Checksum(body, crcTable))
		if _, err := l.w.Write(header[:]); err != nil {
			return err
		}
		if _, err := l.w.Write(body); err != nil {
			return err
		}
	}
	return nil
}

// create creates the segment named by generation and segment, with its header.
func (l *lastUseFiles) create() error {
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return err
	}
	if !l.dirSynced {
		// The directory's own name, once: a snapshot in it may replace the times an older
		// format kept in Badger.
		if err := syncDir(filepath.Dir(l.dir)); err != nil {
			return err
		}
		l.dirSynced = true
	}
	f, err := os.OpenFile(filepath.Join(l.dir, lastUseFileName(l.generation, l.segment)),
		os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	encrypted := byte(0)
	if l.aead != nil {
		encrypted = 1
	}
	l.f = f
	if l.w == nil {
		l.w = bufio.NewWriterSize(f, 256<<10)
	} else {
		l.w.Reset(f)
	}
	if _, err := l.w.WriteString(lastUseMagic); err != nil {
		return err
	}
	if err := l.w.WriteByte(encrypted); err != nil {
		return err
	}
	return syncDir(l.dir) // the new name, so that a sync of the file is enough from now on
}

// sync makes everything written so far durable.
func (l *lastUseFiles) sync() error {
	if l.f == nil {
		return nil
	}
	if err := l.w.Flush(); err != nil {
		return err
	}
	return l.f.Sync()
}

// abandon closes the current segment after a failed write, which may have left part of a
// record at its end, or a segment that could not be created: the next write starts a new
// segment, under the next name.
func (l *lastUseFiles) abandon() {
	_ = l.closeSegment()
	l.segment++
}

// startGeneration closes the current segment and makes the next write begin generation.
// Every write of the segment was synced by its run, so closing it cannot lose anything.
func (l *lastUseFiles) startGeneration(generation uint64) {
	_ = l.closeSegment()
	l.generation, l.segment = generation, 0
}

// close syncs and closes the current segment.
func (l *lastUseFiles) close() error {
	return errors.Join(l.sync(), l.closeSegment())
}

// closeSegment closes the current segment's file, if any; the next write creates one.
func (l *lastUseFiles) closeSegment() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// dropBefore deletes the files of the generations before generation.
func (l *lastUseFiles) dropBefore(generation uint64) error {
	files, err := listLastUseFiles(l.dir)
	if err != nil {
		return err
	}
	removed := false
	for _, f := range files {
		if f.generation < generation {
			if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			removed = true
		}
	}
	if !removed {
		return nil
	}
	return syncDir(l.dir)
}

// tornFile is a file whose end load could not read: size is how much of it holds whole
// records (0 when not even its header is whole).
type tornFile struct {
	path string
	size int64
}

// read calls fn with the chunks of every file of the log, in the order of generation then
// segment, and returns the files it found and those it could not read to the end.
func (l *lastUseFiles) read(fn func(generation uint64, chunk []byte) error) ([]lastUseFile, []tornFile, error) {
	files, err := listLastUseFiles(l.dir)
	if err != nil {
		return nil, nil, err
	}
	var torn []tornFile
	r := bufio.NewReaderSize(nil, 256<<10)
	var body []byte
	for _, file := range files {
		size, complete, err := l.readFile(file, r, &body, fn)
		if err != nil {
			return nil, nil, err
		}
		if !complete {
			torn = append(torn, tornFile{file.path, size})
		}
	}
	return files, torn, nil
}

// readFile reads one file's chunks into fn. It returns how many bytes hold a header and
// whole records, and whether that is the whole file.
func (l *lastUseFiles) readFile(file lastUseFile, r *bufio.Reader, body *[]byte, fn func(uint64, []byte) error) (int64, bool, error) {
	f, err := os.Open(file.path)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	r.Reset(f)
	var header [lastUseHeader]byte
	if _, err := io.ReadFull(r, header[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, false, nil // created, then a crash before its header was written
		}
		return 0, false, err
	}
	if header == [lastUseHeader]byte{} {
		return 0, false, nil // zeros: its first blocks allocated, not written, at a crash
	}
	if string(header[:len(lastUseMagic)]) != lastUseMagic || header[len(lastUseMagic)] > 1 {
		return 0, false, fmt.Errorf("%s is not a last-use file of this version of sessiond (if it is damaged, move it out of the directory: only last-use times are lost, and sessions may expire sooner)", file.path)
	}
	if encrypted := header[len(lastUseMagic)] == 1; encrypted != (l.aead != nil) {
		return 0, false, fmt.Errorf("%w: %s is encrypted: %v, the store: %v", ErrWrongKey, file.path, encrypted, l.aead != nil)
	}
	offset := int64(lastUseHeader)
	for {
		var rh [recordHeader]byte
		_, err := io.ReadFull(r, rh[:])
		if errors.Is(err, io.EOF) {
			return offset, true, nil
		}
		n := binary.LittleEndian.Uint32(rh[:4])
		// No record is empty: a length of 0 is a tail of zeros, which a crash can leave
		// where the file system had allocated blocks but not yet written them.
		if err != nil || n == 0 || n > maxRecordBody {
			return offset, false, ignoreEOF(err)
		}
		*body = slices.Grow((*body)[:0], int(n))[:n]
		if _, err := io.ReadFull(r, *body); err != nil || crc32.Checksum(*body, crcTable) != binary.LittleEndian.Uint32(rh[4:]) {
			return offset, false, ignoreEOF(err)
		}
		chunk := *body
		if l.aead != nil {
			ns := l.aead.NonceSize()
			if len(chunk) < ns {
				return offset, false, nil
			}
			if chunk, err = l.aead.Open(chunk[ns:ns], chunk[:ns], chunk[ns:], nil); err != nil {
				return 0, false, fmt.Errorf("%w: a record of %s does not decrypt", ErrWrongKey, file.path)
			}
		}
		if err := fn(file.generation, chunk); err != nil {
			return 0, false, fmt.Errorf("%s at %d: %w", file.path, offset, err)
		}
		offset += recordHeader + int64(n)
	}
}

// ignoreEOF returns err unless it says a file ended early, which is a torn record.
func ignoreEOF(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return err
}

// truncate cuts torn files back to their whole records, and deletes those without any.
func (l *lastUseFiles) truncate(torn []tornFile) error {
	for _, t := range torn {
		var err error
		if t.size == 0 {
			err = os.Remove(t.path)
		} else {
			err = truncateFile(t.path, t.size)
		}
		if err != nil {
			return err
		}
	}
	if len(torn) == 0 {
		return nil
	}
	return syncDir(l.dir)
}

func lastUseFileName(generation, segment uint64) string {
	return fmt.Sprintf("%016x-%016x.log", generation, segment)
}

// listLastUseFiles returns the files of the log in dir, sorted by generation then segment;
// none if dir does not exist.
func listLastUseFiles(dir string) ([]lastUseFile, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var files []lastUseFile
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".log")
		g, s, ok2 := strings.Cut(name, "-")
		if !ok || !ok2 || len(g) != 16 || len(s) != 16 {
			continue // not ours
		}
		generation, err1 := strconv.ParseUint(g, 16, 64)
		segment, err2 := strconv.ParseUint(s, 16, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		files = append(files, lastUseFile{filepath.Join(dir, e.Name()), generation, segment})
	}
	slices.SortFunc(files, func(a, b lastUseFile) int {
		return cmp.Or(cmp.Compare(a.generation, b.generation), cmp.Compare(a.segment, b.segment))
	})
	return files, nil
}

// truncateFile cuts the file at path to size, durably.
func truncateFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// syncDir makes the names in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
