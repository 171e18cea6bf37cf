// Package keyring answers how a cluster of Caddy instances agrees on keys: through one small
// versioned JSON object (File) in a storage they share, which every instance reads and
// whichever holds the storage lock creates, restores, merges or rotates. It holds the stored format and its bounded reads and writes (format.go), rotation
// as pure functions of the stored ring, the secrets known, the settings and the time
// (rotation.go), and the ring a process shares between its handlers (Ring: ring.go, with the
// on-demand reads of the request path in ondemand.go). It knows nothing of Caddy beyond its
// storage interface.
//
// What the ring promises: every instance accepts a secret's cookies before any instance signs
// with it, and no instance forgets a secret before the cookies it signed can expire.
//
//   - An instance knows a secret once it is in storage: it re-reads storage every check
//     interval, and meeting a cookie it cannot verify it asks for a re-read (ReadOnDemand: one
//     that starts after the cookie arrived, shared by the requests waiting, one at a time; a
//     request waits for it 1.25 s at most, whatever the storage does, then goes on with the
//     keys it has). Reads that find no new secret back off, doubling their spacing up to the
//     check interval, so a stream of forged cookies costs about one storage read per check
//     interval; one that finds a new secret resets the spacing to a second.
//   - A rotated-in secret still waits two of the slowest sharer's re-read intervals (stored as
//     check_interval, the longest any sharer asked for) and two seconds before it signs, so
//     that every instance has it from its own re-reads and no request has to wait for one. A
//     process records a longer interval of its own when a config using it starts, before it
//     re-reads at that pace; until it could record it (a write storage did not take), it
//     re-reads at the stored pace.
//   - A fresh ring's first secret signs once its config start has stored it: there is nothing
//     else to sign with, and instances meeting its cookies find it in storage. A process that
//     found no ring when a handler joined may sign with its candidate a moment before that
//     (Caddy starts apps in no fixed order, the HTTP server perhaps first); the candidate is
//     stored either way (the new ring, or verify-only beside a ring another instance stored
//     first), so only another instance meeting such a cookie within that moment rejects it.
//   - A process keeps every secret it has seen until Keep after it retired, and puts back into
//     storage those the stored ring lacks (a ring deleted or replaced under it) at its next
//     re-read, reload, or on-demand re-read. An instance started while the ring is missing
//     makes a fresh one and knows the old secrets only once a running instance put them back.
//   - Pruning after Keep and the cap of MaxSecrets (oldest first, logged) are the only ways a
//     secret leaves. A stored ring that fails its checks is never written over.
//   - Starting needs no write: the storage lock is taken only when storage lacks something
//     (a ring, a secret, a setting, a due rotation). A write that fails (a read-only or full
//     storage, a lock that cannot be taken) stops nothing: the keys in memory stay in use, the
//     error is logged once a minute and counted (Options.OnError), and every re-read retries.
//     With no ring in storage, that is a fresh ring held in memory only: other instances do not
//     accept its cookies, and a restart forgets it, until storage takes it.
package keyring
