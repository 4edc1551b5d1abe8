/*
 * Payload of the busy test guests of the daemon suite (make xen-test-daemon):
 * one spinning process pinned to each online CPU of the guest, so every vCPU
 * stays runnable.  Reports on the console which CPUs the guest has online and,
 * every few seconds, where each spinner runs.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static void spin(int cpu)
{
    cpu_set_t set;
    time_t last = 0;
    volatile unsigned long n = 0;

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set))
        printf("spin: cannot pin to cpu %d\n", cpu);
    for (;;) {
        n++;
        if ((n & 0xffffff) == 0 && time(NULL) - last >= 10) {
            last = time(NULL);
            printf("spin: spinner %d on cpu %d\n", cpu, sched_getcpu());
        }
    }
}

int main(void)
{
    char online[64] = "?";
    FILE *f = fopen("/sys/devices/system/cpu/online", "r");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int i;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (f) {
        if (!fgets(online, sizeof(online), f))
            strcpy(online, "?");
        fclose(f);
        online[strcspn(online, "\n")] = 0;
    }
    printf("spin: %ld cpus online (%s)\n", cpus, online);
    for (i = 1; i < cpus; i++)
        if (fork() == 0)
            spin(i);
    spin(0);
    return 0;
}
