#include <cstdio>
int main() { std::puts("proxenos (skeleton)"); return 0; }
