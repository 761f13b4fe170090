/* bench/sched_masks.c — sched_pick over 10,000 node views with exact allow masks, as the core
 * builds them (ids for executables, one bit each). Build and run:
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Isrc -o build/bench/sched_masks bench/sched_masks.c build/libmicrovim.a -ljansson
 *   build/bench/sched_masks
 * (the fuller bench/sched replicates the core around sched_pick; this one times the pick alone) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include "core/sched.h"
static long long now_ns(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1000000000LL+t.tv_nsec;}
static int cmp(const void*a,const void*b){long long x=*(long long*)a,y=*(long long*)b;return x<y?-1:x>y;}
/* 10,000 nodes, allow lists of 4 of 50 VNF paths plus /bin/sleep on 95%: ids as the core gives them */
int main(void){
	int N=10000, CALLS=20000; struct sched_node *v=calloc(N,sizeof *v); char path[64]; srand(7);
	for(int i=0;i<N;i++){ json_t *allow=json_array(); uint64_t mask=0; struct exec_allow *ea=calloc(1,sizeof *ea);
		for(int k=0;k<4;k++){int p=rand()%50; snprintf(path,sizeof path,"/usr/bin/vnf%d",p); json_array_append_new(allow,json_string(path)); mask|=1ULL<<p;}
		if(rand()%100<95){json_array_append_new(allow,json_string("/bin/sleep")); mask|=1ULL<<50;}
		if(exec_allow_from_json(ea,allow)<0) abort(); json_decref(allow);
		v[i]=(struct sched_node){.exec_bloom=sched_exec_bloom(ea),.ready=1,.drivers=1u,.exec_allow=ea,.exec_mask=mask,.exec_exact=1,
			.vcpus_milli_total=32000,.memory_mb_total=24000,.vcpus_milli_used=rand()%30000,.memory_mb_used=rand()%20000};}
	for(int common=0;common<2;common++){ long long *t=malloc(sizeof(long long)*CALLS); int found=0;
		for(int c=0;c<CALLS;c++){ int p=c%50; if(common) snprintf(path,sizeof path,"/bin/sleep"); else snprintf(path,sizeof path,"/usr/bin/vnf%d",p);
			struct sched_request r={.driver=0,.executable=path,.exec_bit=sched_exec_bit(path),.exec_id_known=1,.exec_id_bit=common?1ULL<<50:1ULL<<p,.vcpus_milli=100,.memory_mb=16};
			enum sched_miss m; long long a=now_ns(); int k=sched_pick(v,N,&r,SCHED_BINPACK,&m); t[c]=now_ns()-a; found+=k>=0;}
		qsort(t,CALLS,sizeof *t,cmp);
		printf("%s: p50 %.1f us p99 %.1f us max %.1f us (placed %d/%d)\n", common?"/bin/sleep (95%)":"one VNF (~8%)  ", t[CALLS/2]/1e3, t[CALLS*99/100]/1e3, t[CALLS-1]/1e3, found, CALLS); free(t);}
	return 0;}
