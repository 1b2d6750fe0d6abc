// Running the vdisk binary (VDISK_BIN) from tests: one command, or a pipeline of two, with
// stdin, stdout and stderr redirected through files in a scratch directory (or a pipe), and the
// exit code, stdout and stderr returned. Shared by vdisk_cli_test and vdisk_kv_test.
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "tests/test_util.h"

extern char** environ;

namespace vde::testing {

struct Outcome {
  int code = -1;
  std::string out;
  std::string err;
};

inline std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void Spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Where a spawned vdisk's standard streams go: a file to open (empty: inherit), or a descriptor
// to duplicate (-1: none).
struct Redirect {
  std::string in_file, out_file, err_file;
  int in_fd = -1, out_fd = -1, err_fd = -1;  // made O_CLOEXEC, so only the copy survives exec
};

// Starts VDISK_BIN with `args`; returns its pid, or -1 after a test failure.
inline pid_t SpawnVdisk(std::vector<std::string> args, const Redirect& r) {
  args.insert(args.begin(), VDISK_BIN);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  auto wire = [&](int target, const std::string& file, int fd, int flags) {
    if (fd >= 0) {
      posix_spawn_file_actions_adddup2(&fa, fd, target);
    } else if (!file.empty()) {
      posix_spawn_file_actions_addopen(&fa, target, file.c_str(), flags, 0644);
    }
  };
  wire(0, r.in_file, r.in_fd, O_RDONLY);
  wire(1, r.out_file, r.out_fd, O_WRONLY | O_CREAT | O_TRUNC);
  wire(2, r.err_file, r.err_fd, O_WRONLY | O_CREAT | O_TRUNC);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    ADD_FAILURE() << "posix_spawn " << VDISK_BIN << ": " << std::strerror(rc);
    return -1;
  }
  return pid;
}

// Waits for `pid`; its exit code, or -1 (after a test failure) if it did not exit normally.
inline int WaitVdisk(pid_t pid) {
  if (pid < 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  EXPECT_TRUE(WIFEXITED(status)) << "vdisk died: status " << status;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Runs VDISK_BIN with `args`, stdout and stderr captured through files in `dir`, stdin from
// `stdin_file` when given (else inherited).
inline Outcome Vdisk(const ScratchDir& dir, std::vector<std::string> args,
                     const std::string& stdin_file = "") {
  Redirect r;
  r.in_file = stdin_file;
  r.out_file = dir.File("vdisk.stdout");
  r.err_file = dir.File("vdisk.stderr");
  Outcome o;
  o.code = WaitVdisk(SpawnVdisk(std::move(args), r));
  o.out = Slurp(r.out_file);
  o.err = Slurp(r.err_file);
  return o;
}

// Runs `vdisk <first> | vdisk <second>` through a pipe. Returns both outcomes; the first's `out`
// is empty (it went down the pipe).
inline std::pair<Outcome, Outcome> VdiskPipe(const ScratchDir& dir, std::vector<std::string> first,
                                             std::vector<std::string> second) {
  int fds[2];
  std::pair<Outcome, Outcome> o;
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe: " << std::strerror(errno);
    return o;
  }
  Redirect a;
  a.out_fd = fds[1];
  a.err_file = dir.File("pipe1.stderr");
  Redirect b;
  b.in_fd = fds[0];
  b.out_file = dir.File("pipe2.stdout");
  b.err_file = dir.File("pipe2.stderr");
  const pid_t pa = SpawnVdisk(std::move(first), a);
  const pid_t pb = SpawnVdisk(std::move(second), b);
  ::close(fds[0]);
  ::close(fds[1]);
  o.first.code = WaitVdisk(pa);
  o.second.code = WaitVdisk(pb);
  o.first.err = Slurp(a.err_file);
  o.second.out = Slurp(b.out_file);
  o.second.err = Slurp(b.err_file);
  return o;
}

}  // namespace vde::testing
