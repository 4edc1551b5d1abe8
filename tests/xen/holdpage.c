/*
 * Test helper for make xen-test: hold a foreign mapping of one guest frame
 * from dom0, as a backend would, until stdin closes.  While it is held, Xen
 * cannot free the frame, which is what page migration's safety check must
 * notice.  Usage: holdpage DOMID GFN   (prints "held" once mapped).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xenforeignmemory.h>

int main(int argc, char **argv)
{
    xenforeignmemory_handle *fmem;
    xen_pfn_t gfn;
    int err = 0;
    char c;
    void *p;

    if (argc != 3)
        return 2;
    gfn = strtoull(argv[2], NULL, 0);
    fmem = xenforeignmemory_open(NULL, 0);
    if (!fmem)
        return 1;
    p = xenforeignmemory_map(fmem, (uint32_t)atoi(argv[1]), PROT_READ, 1, &gfn, &err);
    if (!p || err) {
        printf("failed %d\n", err);
        return 1;
    }
    printf("held\n");
    fflush(stdout);
    while (read(0, &c, 1) > 0)
        ;
    xenforeignmemory_unmap(fmem, p, 1);
    return 0;
}
