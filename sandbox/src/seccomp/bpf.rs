//! Compiling an allow-list into a classic BPF seccomp program.
//!
//! The program checks the architecture first: each admitted ABI has its own dispatch tree (its
//! own system call numbers), and a call through any other ABI kills the process. The dispatch on
//! the number is a balanced tree built here (seccompiler chains one comparison per system call,
//! which made installing the filter cost ~0.6 ms: the kernel emulates the filter for every
//! system call number to build its action cache); a lookup takes about a dozen instructions. The
//! argument rules are compiled by `seccompiler` and placed once, shared by every ABI's tree
//! (their arguments sit at the same places of `seccomp_data` whatever the ABI).

use seccompiler::{BpfProgram, SeccompRule, sock_filter};

/// `BPF_LD | BPF_W | BPF_ABS`.
const BPF_LD_W_ABS: u16 = 0x20;
/// `BPF_RET | BPF_K`.
const BPF_RET_K: u16 = 0x06;
/// `BPF_JMP | BPF_JA`.
const BPF_JA: u16 = 0x05;
/// `BPF_JMP | BPF_JEQ | BPF_K`.
const BPF_JEQ_K: u16 = 0x15;
/// `BPF_JMP | BPF_JGE | BPF_K`.
const BPF_JGE_K: u16 = 0x35;
const SECCOMP_DATA_NR: u32 = 0;
const SECCOMP_DATA_ARCH: u32 = 4;
/// System calls compared linearly at a leaf of the dispatch tree.
const LEAF: usize = 8;
/// The kernel's limit on a filter's length.
pub const MAX_INSTRUCTIONS: usize = 4096;

/// What the filter does with one system call.
#[derive(Debug, Clone)]
pub enum Action {
    /// Allow it.
    Allow,
    /// Fail it with this errno.
    Errno(i32),
    /// Allow it when any one rule matches its arguments, else fail it with `EPERM`.
    Rules(Vec<SeccompRule>),
}

/// One ABI's system calls: its `AUDIT_ARCH_*` value, and its numbers with the index of their
/// [`Action`].
#[derive(Debug, Clone)]
pub struct Table {
    /// The `arch` field of `seccomp_data` for calls through this ABI.
    pub arch: u32,
    /// (system call number, index into the actions).
    pub calls: Vec<(u32, usize)>,
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

fn ret(action: u32) -> sock_filter {
    stmt(BPF_RET_K, action)
}

/// The `SECCOMP_RET_ERRNO` action for `e`.
pub fn errno(e: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (e as u32 & libc::SECCOMP_RET_DATA)
}

/// What the filter does once the number matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leaf {
    /// Return this action.
    Ret(u32),
    /// Jump to the argument checks at this (reversed) index.
    Chain(usize),
}

/// A BPF program assembled back to front, so every jump goes to code already placed (BPF jumps
/// only forward). Index `i` of `rev` is instruction `len - 1 - i` of the program.
#[derive(Default)]
struct Assembler {
    rev: Vec<sock_filter>,
}

impl Assembler {
    /// Places `instruction` before everything placed so far; returns its reversed index.
    fn push(&mut self, instruction: sock_filter) -> usize {
        self.rev.push(instruction);
        self.rev.len() - 1
    }

    /// Places a forward-ordered block; returns the reversed index of its first instruction.
    fn block(&mut self, block: &[sock_filter]) -> usize {
        self.rev.extend(block.iter().rev().cloned());
        self.rev.len() - 1
    }

    /// The jump offset from the next instruction placed to `target`.
    fn offset(&self, target: usize) -> usize {
        self.rev.len() - target - 1
    }

    /// A jump-always to `target`; returns its index.
    fn jump_to(&mut self, target: usize) -> usize {
        let offset = self.offset(target) as u32;
        self.push(stmt(BPF_JA, offset))
    }

    fn finish(self) -> Vec<sock_filter> {
        self.rev.into_iter().rev().collect()
    }
}

/// Dispatch on the system call number (in the accumulator) over `entries`, sorted by number.
/// Returns the reversed index of the subtree's first instruction (the last one placed).
fn dispatch(asm: &mut Assembler, entries: &[(u32, Leaf)]) -> usize {
    if entries.len() > LEAF {
        // [JGE pivot, jt 0, jf 1] [JA right] [left …]
        let mid = entries.len() / 2;
        let right = dispatch(asm, &entries[mid..]);
        dispatch(asm, &entries[..mid]);
        asm.jump_to(right);
        return asm.push(jump(BPF_JGE_K, entries[mid].0, 0, 1));
    }
    // [JEQ nr1 → t1] … [JEQ nrN → tN] [RET EPERM] [targets: shared RETs and JAs to chains]
    let mut targets: Vec<(Leaf, usize)> = Vec::new();
    for &(_, leaf) in entries {
        if !targets.iter().any(|(l, _)| *l == leaf) {
            let at = match leaf {
                Leaf::Ret(action) => asm.push(ret(action)),
                Leaf::Chain(chain) => asm.jump_to(chain),
            };
            targets.push((leaf, at));
        }
    }
    asm.push(ret(errno(libc::EPERM)));
    for &(nr, leaf) in entries.iter().rev() {
        let target = targets.iter().find(|(l, _)| *l == leaf).map(|(_, at)| *at);
        let offset = asm.offset(target.expect("every leaf has a target"));
        let offset = u8::try_from(offset).expect("a leaf spans fewer than 256 instructions");
        asm.push(jump(BPF_JEQ_K, nr, offset, 0));
    }
    asm.rev.len() - 1
}

/// The program for `actions` reached through `tables`: the architecture check (an ABI without
/// a table is killed), one dispatch tree per table, the argument checks; `EPERM` for every
/// number a table does not name.
pub fn assemble(actions: &[Action], tables: &[Table]) -> BpfProgram {
    let mut asm = Assembler::default();
    let leaves: Vec<Leaf> = actions
        .iter()
        .map(|action| match action {
            Action::Allow => Leaf::Ret(libc::SECCOMP_RET_ALLOW),
            Action::Errno(e) => Leaf::Ret(errno(*e)),
            Action::Rules(rules) => {
                // A failed condition in seccompiler's rule code jumps one past the instruction
                // that follows the rule, which is the "allow": to the next rule, or after the
                // last to the "deny". Each rule also starts with a jump that is never taken (it
                // jumps over it) aimed one further still, so the kernel's bounds check needs a
                // second "deny".
                let mut chain = Vec::new();
                for rule in rules {
                    chain.extend(BpfProgram::from(rule.clone()));
                    chain.push(ret(libc::SECCOMP_RET_ALLOW));
                }
                chain.push(ret(errno(libc::EPERM)));
                chain.push(ret(errno(libc::EPERM)));
                Leaf::Chain(asm.block(&chain))
            }
        })
        .collect();
    let mut starts = Vec::new();
    for table in tables.iter().rev() {
        let mut entries: Vec<(u32, Leaf)> = table
            .calls
            .iter()
            .map(|&(nr, action)| (nr, leaves[action]))
            .collect();
        entries.sort_by_key(|&(nr, _)| nr);
        dispatch(&mut asm, &entries);
        starts.push((table.arch, asm.push(stmt(BPF_LD_W_ABS, SECCOMP_DATA_NR))));
    }
    // [LD arch] ([JEQ arch_i, jt 0, jf 1] [JA tree_i])… [RET KILL_PROCESS]
    asm.push(ret(libc::SECCOMP_RET_KILL_PROCESS));
    for (arch, start) in starts {
        asm.jump_to(start);
        asm.push(jump(BPF_JEQ_K, arch, 0, 1));
    }
    asm.push(stmt(BPF_LD_W_ABS, SECCOMP_DATA_ARCH));
    asm.finish()
}
