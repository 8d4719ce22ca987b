#include "sandbox/jail.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <sched.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "common/unique_fd.hpp"

namespace hospes::sandbox {

namespace {

// An existing directory to mount the empty root on, in the jail's own
// mount namespace (the host's is untouched).
const char* mount_point() {
    for (const char* dir : {"/tmp", "/mnt", "/run", "/var", "/home"}) {
        struct stat st{};
        if (::stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return dir;
    }
    return nullptr;
}

Result<void> empty_root(const std::vector<JailBind>& binds) {
    // Mounts made here stay here: nothing propagates back to the host.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
        return errno_error("jail: cannot make the mounts private");
    const char* dir = mount_point();
    if (dir == nullptr) return host_error("jail: no directory to mount the empty root on");
    // The files to bind, held before the empty root may hide their paths
    // (it is mounted on one of the host's directories).
    std::vector<UniqueFd> sources;
    for (const auto& bind : binds) {
        sources.emplace_back(::open(bind.host_path.c_str(), O_PATH | O_CLOEXEC));
        if (!sources.back().valid()) return errno_error("jail: cannot open '{}' to bind it", bind.host_path);
    }
    std::string options = fmt::format("size=4k,nr_inodes={},mode=0555", binds.size() + 2);
    if (::mount("hospes-jail", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, options.c_str()) != 0)
        return errno_error("jail: cannot mount an empty root on {}", dir);
    for (size_t i = 0; i < binds.size(); ++i) {
        const auto& name = binds[i].name;
        if (name.empty() || name.find('/') != std::string::npos || name[0] == '.')
            return host_error("jail: '{}' cannot name a file in the root", name);
        std::string target = std::string(dir) + "/" + name;
        struct stat source_stat{};
        if (::fstat(sources[i].get(), &source_stat) != 0) return errno_error("jail: cannot stat '{}'", binds[i].host_path);
        if (S_ISDIR(source_stat.st_mode)) {
            if (::mkdir(target.c_str(), 0700) != 0) return errno_error("jail: cannot make {}", target);
        } else {
            UniqueFd placeholder(::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
            if (!placeholder.valid()) return errno_error("jail: cannot make {}", target);
        }
        std::string source = fmt::format("/proc/self/fd/{}", sources[i].get());
        if (::mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0)
            return errno_error("jail: cannot bind '{}' into the jail", binds[i].host_path);
    }
    // pivot_root(".", ".") stacks the old root under the new one, and
    // detaching "." then drops it: nothing of the host stays reachable.
    if (::chdir(dir) != 0) return errno_error("jail: chdir {}", dir);
    if (::syscall(SYS_pivot_root, ".", ".") == 0) {
        if (::umount2(".", MNT_DETACH) != 0) return errno_error("jail: cannot detach the host's root");
    } else if (errno == EINVAL) {
        // The host runs from its initramfs (rootfs, which cannot be pivoted
        // away): the empty root is moved over "/" and chrooted into, as
        // switch_root does. The host's files lie under it, out of reach of a
        // process without capabilities (no unmount, no chroot).
        if (::mount(".", "/", nullptr, MS_MOVE, nullptr) != 0) return errno_error("jail: cannot move the empty root over /");
        if (::chroot(".") != 0) return errno_error("jail: chroot");
    } else {
        return errno_error("jail: pivot_root");
    }
    if (::chdir("/") != 0) return errno_error("jail: chdir /");
    if (::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
        return errno_error("jail: cannot make the empty root read-only");
    return {};
}

Result<void> limit(int resource, uint64_t value, const char* name) {
    rlimit r{value, value};
    if (::setrlimit(resource, &r) != 0) return errno_error("jail: setrlimit {} {}", name, value);
    return {};
}

// No capability left in any set: the bounding set first (while
// CAP_SETPCAP is there), then the change of user clears the permitted and
// effective sets, and capset the inheritable one.
Result<void> drop_privileges(uid_t uid, gid_t gid) {
    for (int cap = 0;; ++cap) {
        if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
            if (errno == EINVAL) break;  // past the last capability this kernel has
            return errno_error("jail: cannot drop capability {} from the bounding set", cap);
        }
    }
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        return errno_error("jail: cannot clear the ambient capabilities");
    if (::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 || ::setresuid(uid, uid, uid) != 0)
        return errno_error("jail: cannot become user {}:{}", uid, gid);
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
    if (::syscall(SYS_capset, &header, data) != 0) return errno_error("jail: capset");
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno_error("jail: PR_SET_NO_NEW_PRIVS");
    // After the change of user, which resets it: no ptrace by this user,
    // no /proc/PID/mem, no core file.
    if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return errno_error("jail: PR_SET_DUMPABLE");
    return {};
}

// Into the namespaces and root of another jailed process.
Result<void> join_jail(pid_t other) {
    UniqueFd mounts(::open(fmt::format("/proc/{}/ns/mnt", other).c_str(), O_RDONLY | O_CLOEXEC));
    UniqueFd network(::open(fmt::format("/proc/{}/ns/net", other).c_str(), O_RDONLY | O_CLOEXEC));
    UniqueFd root(::open(fmt::format("/proc/{}/root", other).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!mounts.valid() || !network.valid() || !root.valid()) return errno_error("jail: cannot find process {}'s jail", other);
    if (::setns(network.get(), CLONE_NEWNET) != 0 || ::setns(mounts.get(), CLONE_NEWNS) != 0)
        return errno_error("jail: cannot join process {}'s namespaces", other);
    // Its root, which need not be its namespace's (a host that runs from
    // its initramfs moves the empty root over / and chroots).
    if (::fchdir(root.get()) != 0 || ::chroot(".") != 0 || ::chdir("/") != 0)
        return errno_error("jail: cannot enter process {}'s root", other);
    return {};
}

}  // namespace

Result<pid_t> spawn_jailed() {
    if (::unshare(CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS) != 0)
        return errno_error("jail: cannot make pid, ipc and uts namespaces");
    pid_t pid = ::fork();
    if (pid < 0) return errno_error("jail: fork");
    return pid;
}

Result<UniqueFd> make_network_namespace() {
    UniqueFd own(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    if (!own.valid()) return errno_error("cannot open this thread's network namespace");
    if (::unshare(CLONE_NEWNET) != 0) return errno_error("cannot make a network namespace");
    UniqueFd made(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
    int saved = errno;
    // Back to where the thread was, whatever happened.
    if (::setns(own.get(), CLONE_NEWNET) != 0) return errno_error("cannot go back to the host's network namespace");
    if (!made.valid()) {
        errno = saved;
        return errno_error("cannot open the network namespace made");
    }
    return made;
}

Result<void> check_network_namespace(int fd) {
    int type = ::ioctl(fd, NS_GET_NSTYPE);
    if (type < 0) return errno_error("descriptor {} is not a namespace", fd);
    if (type != CLONE_NEWNET) return bad_input("descriptor {} is a namespace, but not a network one", fd);
    return {};
}

void close_other_fds(std::span<const int> keep) {
    std::vector<int> sorted(keep.begin(), keep.end());
    std::sort(sorted.begin(), sorted.end());
    unsigned from = 3;
    for (int fd : sorted) {
        if (fd < 3 || static_cast<unsigned>(fd) < from) continue;
        if (static_cast<unsigned>(fd) > from) ::syscall(SYS_close_range, from, static_cast<unsigned>(fd) - 1, 0);
        from = static_cast<unsigned>(fd) + 1;
    }
    ::syscall(SYS_close_range, from, ~0u, 0);
}

Result<void> enter_jail(const JailOptions& options) {
    if (::geteuid() != 0) return host_error("jail: needs root (to make namespaces and change user)");
    if (options.share_with > 0) {
        if (auto r = join_jail(options.share_with); !r) return r;
        return restrict_process(options);
    }
    bool join_network = options.new_network && options.network >= 0;
    if (join_network && ::setns(options.network, CLONE_NEWNET) != 0)
        return errno_error("jail: cannot join the network namespace made for it");
    int namespaces = CLONE_NEWNS | (options.new_network && !join_network ? CLONE_NEWNET : 0);
    if (::unshare(namespaces) != 0) return errno_error("jail: cannot make mount and network namespaces");
    if (auto r = empty_root(options.binds); !r) return r;
    return restrict_process(options);
}

// Limits, then no privilege left: the same in a jail of its own or a shared one.
Result<void> restrict_process(const JailOptions& options) {
    if (auto r = limit(RLIMIT_NOFILE, options.limits.open_files, "RLIMIT_NOFILE"); !r) return r;
    if (auto r = limit(RLIMIT_NPROC, options.limits.processes, "RLIMIT_NPROC"); !r) return r;
    if (options.limits.file_size != 0)
        if (auto r = limit(RLIMIT_FSIZE, options.limits.file_size, "RLIMIT_FSIZE"); !r) return r;
    // Guest RAM must never land in a core file.
    if (auto r = limit(RLIMIT_CORE, 0, "RLIMIT_CORE"); !r) return r;
    if (auto r = drop_privileges(options.uid, options.gid); !r) return r;
    if (options.die_with_parent && ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        return errno_error("jail: PR_SET_PDEATHSIG");
    return {};
}

JailState jail_state() {
    JailState state;
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
    if (::syscall(SYS_capget, &header, data) == 0) {
        state.effective = data[0].effective | uint64_t{data[1].effective} << 32;
        state.permitted = data[0].permitted | uint64_t{data[1].permitted} << 32;
        state.inheritable = data[0].inheritable | uint64_t{data[1].inheritable} << 32;
    }
    for (int cap = 0; cap < 64; ++cap) {
        int in_bounding = ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (in_bounding < 0) break;
        if (in_bounding == 1) state.bounding |= uint64_t{1} << cap;
        if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) == 1) state.ambient |= uint64_t{1} << cap;
    }
    state.no_new_privs = ::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1;
    state.dumpable = ::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0;
    return state;
}

}  // namespace hospes::sandbox
