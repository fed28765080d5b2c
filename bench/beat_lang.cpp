// beat_lang.cpp - the C++ row of the beat scenario (bench/beat.c): a C++17
// worker beating through vigil.h's C++ face, i.e. libvigil's vigil_beat,
// exactly as the README's C++ worker does.
//
//   vigil-bench-cpp-beat N REPS    (VIGIL_SHM, WORKER_ID in the environment)
//
// Attaches, beats N/10 times to warm up, then prints one line per
// repetition: the ns per beat of N beats.  Exit 1 when it cannot attach.
#include <vigil.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	unsigned long long n = std::strtoull(argv[1], nullptr, 10);
	int reps = std::atoi(argv[2]);
	if (n == 0 || reps <= 0 || reps > 64)
		return 2;
	vigil v;
	int rc = vigil_attach(&v);
	if (rc < 0) {
		std::fprintf(stderr, "vigil-bench-cpp-beat: vigil_attach: %s\n", vigil_strerror(rc));
		return 1;
	}
	for (unsigned long long i = 0; i < n / 10; i++)
		vigil_beat(&v, 100, static_cast<unsigned>(i & 63));
	for (int r = 0; r < reps; r++) {
		auto t0 = std::chrono::steady_clock::now();
		for (unsigned long long i = 0; i < n; i++)
			vigil_beat(&v, 100, static_cast<unsigned>(i & 63));
		auto t1 = std::chrono::steady_clock::now();
		double ns = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
		std::printf("%.4f\n", ns / static_cast<double>(n));
	}
	std::fflush(stdout);
	return vigil_detach(&v) < 0;
}
