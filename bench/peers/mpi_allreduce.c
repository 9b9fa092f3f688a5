/* OpenMPI peer for `hpcengine bench collectives`: MPI_Allreduce (float sum) over the given byte sizes.
 * Build: mpicc -O2 -o /tmp/mpi_allreduce bench/peers/mpi_allreduce.c
 * Run:   mpirun --allow-run-as-root --oversubscribe -np 4 --mca btl self,tcp /tmp/mpi_allreduce 4096 16777216 ...
 * Prints "bytes time_us" per size (mean of the iterations, slowest rank) on rank 0. Iterations as ours in
 * bench/peers/collectives.py: 2000 warm-up and 2000 timed below 16 MB, 2 and 5 from there. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  for (int a = 1; a < argc; a++) {
    long bytes = atol(argv[a]);
    long count = bytes / 4 > 0 ? bytes / 4 : 1;
    float *buf = calloc(count, sizeof(float));
    int iters = bytes >= (16L << 20) ? 5 : 2000, warmup = bytes >= (16L << 20) ? 2 : 2000;
    for (int i = 0; i < warmup; i++) MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    double t = MPI_Wtime();
    for (int i = 0; i < iters; i++) MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    double us = (MPI_Wtime() - t) * 1e6 / iters, worst;
    MPI_Reduce(&us, &worst, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (rank == 0) printf("%ld %.2f\n", count * 4, worst);
    fflush(stdout);
    free(buf);
  }
  MPI_Finalize();
  return 0;
}
