/*
 * grace.pml -- Promela model of the hotswap grace-period (RCU-style) protocol
 * under x86-TSO.  See README.md in this directory, and run.sh to check it.
 *
 * Configurations (pass to `spin -a` as -D flags):
 *   (none)                     correct protocol, membarrier mode
 *   -DFENCE_MODE               correct protocol, fallback mode: readers do a
 *                              full fence after the lock-time store, the
 *                              writer never calls membarrier
 *   -DMUTANT_TRUST_INACTIVE    writer trusts "ACTIVE clear" without membarrier
 *   -DMUTANT_LOAD_BEFORE_ANNOUNCE  reader loads `current` before it loads the
 *                              epoch and stores its state
 *   -DMUTANT_IGNORE_OLD_ACTIVE writer does not wait for readers that show an
 *                              older epoch with ACTIVE set
 *   -DFENCE_MODE -DMUTANT_NO_READER_FENCE  fence mode with the reader's
 *                              fence after the lock-time store left out
 *   -DMUTANT_WAIT_ANY_ACTIVE   (liveness mutant) writer waits until the ACTIVE
 *                              bit is clear, whatever the epoch: a stream of
 *                              readers can then starve it
 *   -DRECLAIM_RECORDS          reader 0 may, between sections, release its
 *                              record (state = 0, in_use = false, both
 *                              buffered) and claim it again (CAS + seq_cst
 *                              fence), any number of times; the writer skips
 *                              records whose in_use it reads as false
 *   -DRECLAIM_RECORDS -DRECHECK_IN_USE  the writer may also re-load in_use
 *                              of a pending record (at any re-poll and while
 *                              waiting) and drop it if it reads false; the
 *                              C++ does not do this (it need not: see README)
 *   -DRECLAIM_RECORDS -DMUTANT_CLAIM_WITHOUT_FENCE  the claim is a plain
 *                              buffered store in_use = true: no drain, no fence
 *   -DSLEEP_WAIT               membarrier mode with the sleeping wait: the
 *                              writer flags the readers that look active
 *                              before membarrier (EG.W1), and waits for a pending
 *                              reader by reading the futex word (EG.W2), raising
 *                              the reader's flag if it is down (an exchange:
 *                              then membarrier again), re-checking, and sleeping
 *                              until the word changes; a reader leaving its
 *                              outermost section loads its flag (EG.W4) and, if
 *                              set, clears it and bumps the word (a locked
 *                              RMW, EG.W3).  Readers run NSECT sections and stop,
 *                              so a lost wake-up is a deadlock: pan reports
 *                              an invalid end state.
 *   -DSLEEP_WAIT -DMUTANT_FLAG_AFTER_BARRIER  the flags are raised after the
 *                              membarrier instead of before it
 *   -DSLEEP_WAIT -DMUTANT_SEQ_AFTER_RECHECK   the writer reads the futex word
 *                              after its re-check instead of before it
 *   -DNEW_RECORD               reader 1 starts with a brand-new record that is
 *                              not in the list yet: it links it (locked CAS on
 *                              the list head, then the claim fence) before its
 *                              first section; the writer's scan skips a
 *                              record it does not find linked
 *   -DNEW_RECORD -DMUTANT_LINK_WITHOUT_BARRIER  the link is a plain buffered
 *                              store: no drain, no fence
 *   -DCHECK_LIVENESS           adds the LTL claim  <> writer_done
 *                              (check with pan -a -f: weak fairness)
 *   -DSB_CAP=n                 capacity of each reader's store buffer (3)
 *   -DMAX_POLLS=n              max writer re-polls before membarrier (1)
 *
 * Memory model (x86-TSO):
 *   - the only locations readers write are their own `state[r]` and (with
 *     RECLAIM_RECORDS) `in_use[r]`; each such store goes into that reader's
 *     FIFO store buffer sb[r][] and reaches memory later, in order, one entry
 *     at a time (process Drain(r));
 *   - the claim's CAS on in_use[r] is a locked instruction: it drains the
 *     reader's buffer and updates memory in one step (a full barrier);
 *   - a reader's loads of `epoch` and `current` read memory directly, so they
 *     can be performed while the reader's earlier store to `state[r]` is still
 *     buffered (store->load reordering, the one reordering TSO allows);
 *     load->load order is program order (TSO);
 *   - readers never load `state[r]` themselves, so store-to-load forwarding
 *     never matters;
 *   - the writer only uses locked RMWs (exchange, fetch_add) and loads, so its
 *     accesses are modelled as sequentially consistent (no writer buffer).
 *   - membarrier(): every reader's store buffer is drained completely at some
 *     point during the call (a descheduled reader is equivalent: a context
 *     switch is a full barrier).
 */

#define NR       2          /* readers                                        */
#define NVER     3          /* versions 0,1,2                                 */
#define ACTIVE   1          /* ACTIVE bit of a state word                     */

#ifndef SB_CAP
#define SB_CAP   3          /* store-buffer entries per reader                */
#endif
#ifndef MAX_POLLS
#define MAX_POLLS 1         /* writer re-polls before it calls membarrier     */
#endif

#define EPOCH_OF(s)   ((s) & 254)      /* state & ~ACTIVE                     */
#define IS_ACTIVE(s)  (((s) & ACTIVE) != 0)

/* ------------------------------------------------------------ shared state */
byte epoch   = 2;           /* global epoch: 2, 4, 6 (step 2)                 */
byte current = 0;           /* published version                              */
bool reclaimed[NVER];       /* reclaimed[v]: version v has been freed         */
byte state[NR];             /* per-reader state word IN MEMORY: epoch|ACTIVE,
                               0 = never active                               */
bool writer_done = false;   /* writer finished both swaps (liveness goal)     */
bool in_use[NR] = true;     /* record r is claimed (IN MEMORY); both records
                               start claimed by their readers                 */
#ifdef SLEEP_WAIT
#ifndef NSECT
#define NSECT    1          /* sections per reader before it stops (2 also
                               verifies: 27M states, about a minute)          */
#endif
bool wake_wanted[NR];       /* EG.W1: raised by the writer, cleared by reader r   */
byte wake = 0;              /* the futex word                                 */
#endif
bool linked[NR] = true;     /* record r is reachable from the list head (IN
                               MEMORY); with NEW_RECORD reader 1's is not yet */

/* ------------------------------------------ per-reader TSO store buffers   */
byte sb[NR * SB_CAP];       /* sb[r*SB_CAP + i], i = 0 is the oldest entry    */
byte sbn[NR];               /* number of buffered entries                     */

/* A buffered entry is a store to state[r] (the value, 0..7), a store to
   in_use[r] (IU_TAG | 0 or 1), or the link of record r (LINK_TAG).           */
#define IU_TAG   16
#define IS_IU(x) (((x) & IU_TAG) != 0)
#define LINK_TAG 32
#define IS_LINK(x) (((x) & LINK_TAG) != 0)

/* reader r stores `val` to state[r]: goes into its store buffer.
   Blocks while the buffer is full (the drain process makes room).           */
inline buffered_store(r, val) {
  atomic {
    sbn[r] < SB_CAP ->
    sb[r * SB_CAP + sbn[r]] = val;
    sbn[r]++
  }
}

/* the oldest buffered store of reader r reaches memory */
inline drain_one(r) {
  if
  :: IS_LINK(sb[r * SB_CAP]) -> linked[r] = true
  :: IS_IU(sb[r * SB_CAP]) -> in_use[r] = ((sb[r * SB_CAP] & 1) != 0)
  :: else -> state[r] = sb[r * SB_CAP]
  fi;
  sb[r * SB_CAP] = sb[r * SB_CAP + 1];
#if SB_CAP > 2
  sb[r * SB_CAP + 1] = sb[r * SB_CAP + 2];
#endif
#if SB_CAP > 3
  sb[r * SB_CAP + 2] = sb[r * SB_CAP + 3];
#endif
  sb[r * SB_CAP + SB_CAP - 1] = 0;
  sbn[r]--
}

/* drain reader r's whole buffer (full fence / membarrier IPI on r's CPU) */
inline flush(r) {
  atomic {
    do
    :: sbn[r] > 0 -> drain_one(r)
    :: else -> break
    od
  }
}

/* Drain(r): the hardware, writing r's buffered stores to memory at any time */
proctype Drain(byte r) {
end_drain:
  do
  :: atomic { sbn[r] > 0 -> drain_one(r) }
  od
}

/* ================================================================= reader */

/* lock(): C++ reader::lock().  Only the outermost lock touches shared state. */
inline rd_lock() {
  if
  :: nesting == 0 ->
     e = epoch;                        /* C++: e = epoch.load(acquire)        */
     buffered_store(me, e | ACTIVE);   /* C++: state.store(e|1, release) (EG.C):
                                          a plain mov on x86, sits in the store
                                          buffer; in membarrier mode only a
                                          compiler barrier follows            */
#if defined(FENCE_MODE) && !defined(MUTANT_NO_READER_FENCE)
     (sbn[me] == 0);                   /* C++: full fence (seq_cst fence /
                                          mfence): wait for own buffer to
                                          drain before any later load         */
#endif
     nesting++
  :: else ->
     nesting++                         /* nested: counter only                */
  fi
}

#ifdef SLEEP_WAIT
/* EG.W4 then EG.W3: C++ `if (wake_wanted_) wake_writer()`.  The flag load reads
   memory (it may pass the reader's buffered EG.E: store->load reordering).  The
   clear is a store and the bump a locked RMW, which drains the buffer first:
   one atomic step.                                                          */
inline take_flag_and_wake() {
  if
  :: wake_wanted[me] -> atomic { flush(me); wake_wanted[me] = false; wake++ }
  :: else -> skip
  fi
}
#endif

/* unlock(): C++ reader::unlock() */
inline rd_unlock() {
  nesting--;
  if
  :: nesting == 0 ->
     buffered_store(me, e);            /* C++: state.store(e, release) --
                                          inactive, epoch kept; buffered      */
#ifdef SLEEP_WAIT
     take_flag_and_wake();             /* L: only the outermost unlock wakes  */
#endif
     e = 0                             /* (dead local, reset for the search)  */
  :: else -> skip
  fi
}

/* LOAD_CURRENT(v): v = current.load(acquire) -- a load from memory.
   DEREF(v): dereference a version obtained from `current`: it must not have
   been reclaimed (the safety property).
   The liveness run abstracts both to `skip` (same steps, no data): v1/v2 never
   influence control flow, so they cannot matter for <> writer_done, and
   dropping them shrinks that search about 5x.  Safety is checked in the
   runs without CHECK_LIVENESS.                                             */
#ifdef CHECK_LIVENESS
#define LOAD_CURRENT(v)  skip
#define DEREF(v)         skip
#else
#define LOAD_CURRENT(v)  v = current
#define DEREF(v)         assert(!reclaimed[v])
#endif

#ifdef RECLAIM_RECORDS
/* The thread owning record `me` exits (or calls detach()) outside any
   section, and a new thread claims the free record.  Modelled by the same
   process; only reader 0 does it (reader 1 keeps its record for ever).      */
inline release_and_claim() {
  /* ---- release: C++ on_release(): state.store(0, release);
                   then in_use.store(false, release) -- both buffered, FIFO */
  buffered_store(me, 0);
  buffered_store(me, IU_TAG | 0);
  /* ---- claim by a new thread ---- */
#ifdef MUTANT_CLAIM_WITHOUT_FENCE
  /* MUTANT: the claim is a plain (relaxed) store: buffered, no barrier      */
  buffered_store(me, IU_TAG | 1);
#else
  /* C++: in_use.compare_exchange_strong(false, true) -- locked instruction:
     drains the buffer (so the release reaches memory), then the RMW, all
     before any later load.  The CAS succeeds: after the drain in_use is
     false, and nobody else claims records in this model.                   */
  atomic {
    flush(me);
    assert(!in_use[me]);
    in_use[me] = true
  };
  (sbn[me] == 0);                      /* C++: atomic_thread_fence(seq_cst)   */
#endif
  /* C++ on_claim() also stores state = 0 (relaxed): state is already 0
     from the release, so that store changes nothing and is left out.        */
  skip
}
#endif

#ifdef NEW_RECORD
/* C++ record_list::claim() for a record no list walk has seen: link() (a
   seq_cst CAS on the list head: a locked instruction, so it drains the
   buffer) and the claim fence F after it.                                   */
inline link_new_record() {
#ifdef MUTANT_LINK_WITHOUT_BARRIER
  buffered_store(me, LINK_TAG)         /* MUTANT: a plain buffered store      */
#else
  atomic { flush(me); linked[me] = true };
  (sbn[me] == 0)                       /* C++: atomic_thread_fence(seq_cst)   */
#endif
}
#endif

proctype Reader(byte me) {
  byte nesting = 0;  /* private nesting counter                             */
  byte e = 0;        /* epoch announced by the outermost lock               */
  byte v1, v2;       /* versions loaded from `current`                      */
#ifdef SLEEP_WAIT
  byte sections = 0;
#endif

#ifdef NEW_RECORD
  if
  :: me == 1 -> link_new_record()
  :: else -> skip
  fi;
#endif

end_reader:
  do
#ifdef SLEEP_WAIT
  :: sections == NSECT -> break        /* bounded: a lost wake-up deadlocks   */
  :: sections < NSECT -> sections++;
#else
  ::
#endif
     /* ---- one outer read-side critical section ---- */
#ifdef MUTANT_LOAD_BEFORE_ANNOUNCE
     LOAD_CURRENT(v1);                 /* MUTANT: load current first ...      */
     rd_lock();                        /* ... then load epoch, store state    */
#else
     rd_lock();                        /* C++: reader.lock()                  */
     LOAD_CURRENT(v1);                 /* C++: p = current.load(acquire)      */
#endif
     DEREF(v1);                        /* C++: use *p                         */
     if
     :: /* nested section */
        rd_lock();                     /* nested read_lock(): nesting 1 -> 2  */
        LOAD_CURRENT(v2);              /* load current again (may be newer)   */
        DEREF(v2);
        rd_unlock();                   /* nesting 2 -> 1, no store            */
        v2 = 0
     :: skip
     fi;
     DEREF(v1);                        /* use *p a second time                */
     v1 = 0;
     rd_unlock()                       /* C++: reader.unlock()                */
#ifdef RECLAIM_RECORDS
  :: me == 0 ->                        /* between sections (nesting == 0):    */
     release_and_claim()               /* thread exits, a new one claims      */
#endif
  od
}

/* ================================================================= writer */

/* One poll of reader r's state word after the epoch bump: cleared if it
   announced the new epoch (active or not).  A single load of memory.       */
inline poll_new_epoch(r) {
  if
  :: pend[r] -> pend[r] = (EPOCH_OF(state[r]) < target)
#ifdef RECHECK_IN_USE
  :: pend[r] -> pend[r] = in_use[r]    /* re-load in_use instead: free => done */
#endif
  :: else -> skip
  fi
}

/* First scan of record r: C++ `if (!r.in_use.load(acquire)) return;` then
   one load of its state.  Two separate loads (two steps).                   */
inline first_scan(r) {
#ifdef NEW_RECORD
  if
  :: !linked[r] -> pend[r] = false     /* not in the list: not visited        */
  :: else ->
#endif
#ifdef RECLAIM_RECORDS
  if
  :: in_use[r] -> pend[r] = (EPOCH_OF(state[r]) < target)
  :: else -> pend[r] = false           /* free record: skipped, never pending */
  fi
#else
  pend[r] = (EPOCH_OF(state[r]) < target)
#endif
#ifdef NEW_RECORD
  fi
#endif
}

/* Final wait for pending reader r: a single load that either clears r or
   (modelling the C++ re-read loop) blocks until r's state word clears it.  */
inline wait_reader(r) {
  if
  :: pend[r] ->
#if defined(MUTANT_IGNORE_OLD_ACTIVE)
     /* MUTANT: an old epoch with ACTIVE set is treated as cleared too      */
     skip;
#elif defined(MUTANT_WAIT_ANY_ACTIVE)
     /* MUTANT (liveness): wait until ACTIVE is clear, ignoring the epoch   */
     (!IS_ACTIVE(state[r]));
#else
     /* C++: loop { s = state.load(acquire);
                    if (!(s & ACTIVE) || (s & ~ACTIVE) >= target) break; }  */
#if defined(SLEEP_WAIT)
     /* C++ synchronize() + sleep_until_woken() after the barrier           */
     do
     :: (!IS_ACTIVE(state[r]) || EPOCH_OF(state[r]) >= target) -> break
     :: else ->
#ifndef MUTANT_SEQ_AFTER_RECHECK
        seq = wake;                    /* EG.W2: read the futex word first    */
#endif
        if
        :: atomic { !wake_wanted[r] ->  /* EG.W1 found the flag down (exchange)  */
           wake_wanted[r] = true };
           flush(0); flush(1)          /* then EG.M: membarrier again            */
        :: else -> skip                /* still up: an earlier M covers it    */
        fi;
        if
        :: (!IS_ACTIVE(state[r]) || EPOCH_OF(state[r]) >= target) -> break
        :: else ->
#ifdef MUTANT_SEQ_AFTER_RECHECK
           seq = wake;                 /* MUTANT: word read after the check   */
#endif
           (wake != seq)               /* futex_wait(wake, seq): returns once
                                          the word differs (compare + sleep
                                          are one step in the kernel)         */
        fi
     od;
#elif defined(RECHECK_IN_USE)
     if
     :: (!IS_ACTIVE(state[r]) || EPOCH_OF(state[r]) >= target)
     :: (!in_use[r])                   /* re-load of in_use reads false       */
     fi;
#else
     (!IS_ACTIVE(state[r]) || EPOCH_OF(state[r]) >= target);
#endif
#endif
     pend[r] = false
  :: else -> skip
  fi
}

#ifdef SLEEP_WAIT
/* F for a reader that looks inside an old section (C++ ask_to_wake) */
inline ask_to_wake(r) {
  if
  :: pend[r] && IS_ACTIVE(state[r]) -> wake_wanted[r] = true
  :: else -> skip
  fi
}
#endif

proctype Writer() {
  byte newv = 1;      /* version being published                            */
  byte old;           /* version being retired                              */
  byte target;        /* epoch the grace period waits for                   */
  bool pend[NR];      /* reader still pending in this grace period          */
  byte polls;
#ifdef SLEEP_WAIT
  byte seq;           /* futex word read before the re-check               */
#endif

  do
  :: newv < NVER ->
     /* ---- publish: C++ old = current.exchange(new)  (locked insn) ---- */
     atomic { old = current; current = newv };

     /* ---- synchronize() ---- */
     /* C++: target = epoch.fetch_add(2) + 2   (locked insn, full barrier) */
     atomic { epoch = epoch + 2; target = epoch };

     /* C++: first scan, s = state[r].load(acquire) for each reader       */
     first_scan(0);
     first_scan(1);

#ifndef FENCE_MODE
     /* membarrier mode: optional re-polls (C++ spins a while before the
        expensive syscall); only the new epoch can clear a reader here    */
     polls = 0;
     do
     :: polls < MAX_POLLS && (pend[0] || pend[1]) ->
        polls++;
        poll_new_epoch(0);
        poll_new_epoch(1)
     :: break
     od;
     polls = 0;
  #ifndef MUTANT_TRUST_INACTIVE
     /* C++: if any reader pending: membarrier(PRIVATE_EXPEDITED) -- each
        reader's buffer is drained at some point during the call (one
        atomic step per reader; readers may run in between)               */
     if
     :: pend[0] || pend[1] ->
#if defined(SLEEP_WAIT) && !defined(MUTANT_FLAG_AFTER_BARRIER)
        ask_to_wake(0);                /* F before M                          */
        ask_to_wake(1);
#endif
        flush(0);
        flush(1)
#if defined(SLEEP_WAIT) && defined(MUTANT_FLAG_AFTER_BARRIER)
        ; ask_to_wake(0);              /* MUTANT: F after M, then trusted     */
        ask_to_wake(1)
#endif
     :: else -> skip
     fi;
  #endif
     /* MUTANT_TRUST_INACTIVE falls through here without the membarrier   */
#endif
     /* after membarrier (or, FENCE_MODE, directly): ACTIVE clear or
        epoch >= target clears r; ACTIVE with old epoch is waited on      */
     wait_reader(0);
     wait_reader(1);
     target = 0;
#ifdef SLEEP_WAIT
     seq = 0;
#endif

     /* ---- reclaim: C++ delete old ---- */
     reclaimed[old] = true;
     old = 0;
     newv++
  :: else -> break
  od;
  writer_done = true
}

init {
  atomic {
#ifdef NEW_RECORD
    linked[1] = false;
#endif
    run Drain(0);
    run Drain(1);
    run Reader(0);
    run Reader(1);
    run Writer()
  }
}

#ifdef CHECK_LIVENESS
/* synchronize() always terminates -- even though readers enter and leave
   read-side sections forever -- under weak fairness (every continuously
   enabled process, including the store-buffer drains, eventually moves) */
ltl writer_terminates { <> writer_done }
#endif
