/* Loop forever; the volatile counter keeps the loop from being optimized out. */
int main(void) {
    volatile unsigned long counter = 0;
    for (;;)
        counter++;
}
